"""Spoken digits: a CNN teacher distilled into a student whose int8 TFLite file fits in 64 KB.

What it shows: keras-kd on audio, run as the main job (`keras-kd distill --dataset=fsdd`):
log-mel spectrograms (40 bins, 61 frames of 1 s at 8 kHz, `tf.signal`), a CNN teacher trained
on every training label, and a 25k-weight student that gets 10 % of the labels; the student
from those labels alone is compared with the same student distilled on them plus the other
training clips without labels, each student searching three learning rates on validation. The
distilled student is then exported as a full-integer TFLite
file (int8 inputs and outputs) and measured with the TFLite interpreter.

Data: the Free Spoken Digit Dataset from `--data_dir`, $KERAS_KD_DATA_DIR or
`../shared/data/fsdd/recordings`; split as its documentation suggests (recording indices 0-4
are the test set).

    python examples/speech/fsdd/distill_fsdd.py --seeds=0,1,2 --results=benchmarks/results/speech_fsdd.json

Results of a run are in README.md beside this file.
"""

import json
import os
import time

from absl import app, flags

from keras_kd.cli.flags import build_config, define_flags
from keras_kd.jobs import seeds
from keras_kd.jobs.config import DistillConfig

# Every flag of `keras-kd distill`, with this example's defaults: both students search three learning
# rates on validation (keras_kd.jobs.sweep), in every seed.
FLAGS = define_flags(
    DistillConfig,
    flags.FLAGS,
    defaults={
        "dataset": "fsdd",
        "teacher_epochs": 30,
        "student_epochs": 40,
        "learning_rate_grid": ["1e-3", "3e-3", "1e-2"],
        "verbose": 2,
    },
)
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_string("results", None, "Optional JSON file for the figures.")


def main(_):
    started = time.time()
    config = build_config(FLAGS, DistillConfig)
    runs = seeds.run_over_seeds(config, FLAGS.seeds, with_int8=True, int8_io=True)
    print(seeds.summary_table(runs))
    metadata = runs[-1]["metadata"]  # the split is the same in every seed
    if FLAGS.results:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
        with open(FLAGS.results, "w") as handle:
            json.dump(
                {
                    "train_clips": metadata["train_examples"] + metadata["validation_examples"],
                    "test_clips": metadata["test_examples"],
                    "labeled_clips": metadata["labeled_examples"],
                    "unlabeled_clips": metadata["unlabeled_examples"],
                    "machine": seeds.machine(),
                    "wall_seconds": round(time.time() - started, 1),
                    "runs": runs,  # per seed: its models, the students' selection and the run's metadata
                },
                handle,
                indent=2,
            )


if __name__ == "__main__":
    app.run(main)
