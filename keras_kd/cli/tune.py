"""`keras-kd tune`: search recipe, alpha, temperature and learning rate on validation data.

Trains the teacher once, runs a KerasTuner search of the distillation settings and one of the
same size over the learning rate of the student from labels alone (the control), prints every
trial best first and whether distillation beat the control, and writes `best.yaml` (for
`keras-kd distill --config=best.yaml`), `tune.json` and KerasTuner's projects (`tuner/`) into
`--output_dir`. The test set is not used.

Your own data: `--teacher=FILE.keras --student=FILE.keras|PRESET --train=DATA [--unlabeled=DATA]
[--validation=DATA|--validation_split=0.1]`, the same forms as `keras-kd distill` (docs/cli.md),
prepared by the same code; there is no `--test`.
"""

from keras_kd.cli.flags import define_flags
from keras_kd.cli.subcommand import run_subcommand
from keras_kd.jobs.config import TuneConfig

FLAGS = define_flags(
    TuneConfig,
    output_dir="runs/tune",
    output_help="Where best.yaml, tune.json and the tuner's projects go.",
    overwrite_help="Replace best.yaml and tune.json in a non-empty --output_dir (earlier "
    "tuner projects and other files are left alone).",
)


def run(argv):
    def job(config, output_dir):
        from keras_kd.jobs.tune import tune

        tune(config, output_dir)

    return run_subcommand("tune", argv, FLAGS, TuneConfig, job)
