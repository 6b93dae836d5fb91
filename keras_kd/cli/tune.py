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

import sys

from absl import flags

from keras_kd.cli.flags_util import build_config as build_config_from
from keras_kd.cli.flags_util import output_dir_problem, parse

FLAGS = flags.FlagValues()
flags.DEFINE_enum("dataset", "digits", ["digits", "fashion_mnist"], "Data set.", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "Folder with the data set's files (Fashion-MNIST).", flag_values=FLAGS)
flags.DEFINE_string("output_dir", "runs/tune", "Where best.yaml, tune.json and the tuner's projects go.",
                    flag_values=FLAGS)
flags.DEFINE_string("teacher", None, "A saved teacher to use instead of training one.", flag_values=FLAGS)
flags.DEFINE_integer("teacher_epochs", 40, "Epochs to train the teacher.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("student_epochs", 60, "Epochs to train each student in each trial.", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float("labeled_fraction", 0.1, "Share of the training examples whose labels the students get; "
                   "the rest is an unlabelled pool the teacher scores (1: every label, no pool).", flag_values=FLAGS)
flags.DEFINE_float("validation_split", 0.1, "Share of the training data held out to score each trial "
                   "(never the test set); must be > 0.", flag_values=FLAGS)
flags.DEFINE_string("train", None, "Your labelled training data (the forms of keras-kd distill: .npz, .csv, or a "
                    "folder of images, .txt or .wav files in one sub-folder per class). Needs --teacher, --student.",
                    flag_values=FLAGS)
flags.DEFINE_string("unlabeled", None, "Your unlabelled data: the pool the teacher scores.", flag_values=FLAGS)
flags.DEFINE_string("validation", None, "Your validation data, which scores each trial (else --validation_split "
                    "of --train).", flag_values=FLAGS)
flags.DEFINE_string("student", None, "The student: an untrained .keras model (every trial starts from its "
                    "weights) or a preset name (digits, fashion_mnist, fsdd).", flag_values=FLAGS)
flags.DEFINE_string("label_column", "label", "The class column of CSV data.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Random seed: data split, initial weights and the searches.", flag_values=FLAGS)
flags.DEFINE_integer("max_trials", 10, "Trials of each search (distilled, and the control from labels).",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "Replace best.yaml and tune.json in a non-empty --output_dir (earlier "
                  "tuner projects and other files are left alone).", flag_values=FLAGS)
flags.DEFINE_string("config", None, "A YAML file of settings (keys: the flags' names); flags given on the "
                    "command line override it. Its recipe, alpha, temperature and learning_rate are searched.",
                    flag_values=FLAGS)
flags.DEFINE_integer("verbose", None, "0 quiet; else KerasTuner reports each trial and Keras the teacher's "
                     "epochs (default: 1 on a terminal, else 2).", flag_values=FLAGS)

# Flag name -> DistillConfig field. Recipe, alpha, temperature and learning rate are searched.
FLAG_FIELDS = {
    "dataset": "dataset", "data_dir": "data_dir", "teacher": "teacher_path",
    "teacher_epochs": "teacher_epochs", "student_epochs": "student_epochs", "batch_size": "batch_size",
    "labeled_fraction": "labeled_fraction", "validation_split": "validation_split", "seed": "seed",
    "train": "train", "unlabeled": "unlabeled", "validation": "validation", "student": "student_path",
    "label_column": "label_column",
}


def build_config():
    from keras_kd.experiment import DistillConfig

    return build_config_from(FLAGS, FLAG_FIELDS, DistillConfig)


def run(argv):
    if not parse(FLAGS, argv):
        return 2
    from keras_kd.tuning import check_tunable, tune
    from keras_kd.validation import UsageError

    try:
        config = build_config()
        check_tunable(config, FLAGS.max_trials)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"keras-kd tune: {error}", file=sys.stderr)
        return 2
    problem = output_dir_problem(FLAGS.output_dir, FLAGS.overwrite)
    if problem:
        print(f"keras-kd tune: {problem}", file=sys.stderr)
        return 2
    try:
        tune(config, FLAGS.output_dir, max_trials=FLAGS.max_trials)
    except UsageError as error:  # your own data against the teacher: shapes, classes, labels
        print(f"keras-kd tune: {error}", file=sys.stderr)
        return 2
    return 0
