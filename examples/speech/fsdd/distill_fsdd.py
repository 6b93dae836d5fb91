"""Spoken digits: a CNN teacher distilled into a student whose int8 TFLite file fits in 64 KB.

What it shows: keras-kd on audio, run as the main job (`keras-kd distill --dataset=fsdd`):
log-mel spectrograms (40 bins, 61 frames of 1 s at 8 kHz, `tf.signal`), a CNN teacher trained
on every training label, and a 25k-weight student that gets 10 % of the labels; the student
from those labels alone is compared with the same student distilled on them plus the other
training clips without labels. The distilled student is then exported as a full-integer TFLite
file (int8 inputs and outputs) and measured with the TFLite interpreter.

Data: the Free Spoken Digit Dataset from `--data_dir`, $KERAS_KD_DATA_DIR or
`../shared/data/fsdd/recordings`; split as its documentation suggests (recording indices 0-4
are the test set).

    python examples/speech/fsdd/distill_fsdd.py --seeds=0,1,2 --results=benchmarks/results/speech_fsdd.json

Results of a run are in README.md beside this file.
"""

import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from keras_kd.backend import keras
from keras_kd.compression import artifacts, export_tflite
from keras_kd.experiment import DistillConfig, load_split, run_distill
from keras_kd.report import ModelRow, format_table

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with FSDD's recordings.")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_integer("teacher_epochs", 30, "Teacher epochs.")
flags.DEFINE_integer("student_epochs", 40, "Epochs of the distilled student (the student from labels gets as "
                     "many optimizer steps).")
flags.DEFINE_float("labeled_fraction", 0.1, "Share of the training clips whose labels the students get.")
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate.")
flags.DEFINE_string("results", None, "Optional JSON file for the figures.")


def run(seed):
    config = DistillConfig(dataset="fsdd", data_dir=FLAGS.data_dir, teacher_epochs=FLAGS.teacher_epochs,
                           student_epochs=FLAGS.student_epochs, labeled_fraction=FLAGS.labeled_fraction,
                           learning_rate=FLAGS.learning_rate, seed=seed, verbose=2)
    (x_train, _), (x_test, y_test) = load_split(config)
    with tempfile.TemporaryDirectory() as folder:
        rows, metadata = run_distill(config, folder)
        student = keras.models.load_model(os.path.join(folder, "student_kd.keras"), compile=False)
        path = os.path.join(folder, "student_kd_int8.tflite")
        export_tflite(student, path, "int8", representative_data=x_train, int8_io=True)
        measured = artifacts.measure(path, "tflite", x_test, y_test)
    rows.append(ModelRow("student_kd_int8_tflite", rows[-1].params, measured["size_bytes"], measured["accuracy"],
                         measured["latency_ms_batch1"]))
    return rows, metadata


def main(_):
    started = time.time()
    all_rows, metadata = {}, None
    for seed in (int(s) for s in FLAGS.seeds):
        rows, metadata = run(seed)
        print(f"seed {seed}\n{format_table(rows)}", flush=True)
        all_rows[seed] = [row.as_dict() for row in rows]
    for name in [r["name"] for r in next(iter(all_rows.values()))]:
        acc = 100 * np.array([[r["accuracy"] for r in rows if r["name"] == name][0] for rows in all_rows.values()])
        print(f"{name}: {acc.mean():.2f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.2f} % over seeds {FLAGS.seeds}")
    if FLAGS.results:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
        with open(FLAGS.results, "w") as handle:
            json.dump({"train_clips": metadata["train_examples"] + metadata["validation_examples"],
                       "test_clips": metadata["test_examples"], "labeled_clips": metadata["labeled_examples"],
                       "unlabeled_clips": metadata["unlabeled_examples"], "metadata": metadata,
                       "wall_seconds": round(time.time() - started, 1), "runs": all_rows}, handle, indent=2)


if __name__ == "__main__":
    app.run(main)
