"""Spoken digits: a CNN teacher distilled into a tiny student fit for a microcontroller (int8 TFLite).

What it shows: keras-kd on audio. Log-mel spectrograms (40 bins, 61 frames of 1 s at 8 kHz,
`tf.signal`) feed a CNN teacher and a student of a few thousand weights; the student learns
from labels alone and by distillation, and the distilled one is exported as a full-integer
TFLite file (int8 inputs and outputs), which is measured with the TFLite interpreter.

Data: the Free Spoken Digit Dataset from `--data_dir`, $KERAS_KD_DATA_DIR or
`../shared/data/fsdd/recordings`, else downloaded; split as its documentation suggests
(recording indices 0-4 are the test set).

    python examples/speech/fsdd/distill_fsdd.py --seeds=0,1,2

Results of a run are in README.md beside this file.
"""

import json
import os
import tempfile

import numpy as np
from absl import app, flags

import keras_kd
from keras_kd.backend import keras
from keras_kd.compression import artifacts, export_tflite
from keras_kd.report import ModelRow, accuracy, format_table, latency_ms, model_file_size
from keras_kd.utils import count_params

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with FSDD's recordings.")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_integer("teacher_epochs", 30, "Teacher epochs.")
flags.DEFINE_integer("epochs", 60, "Student epochs.")
flags.DEFINE_float("alpha", 0.1, "Weight of the label loss.")
flags.DEFINE_float("temperature", 4.0, "Distillation temperature.")
flags.DEFINE_string("results", None, "Optional JSON file for the figures.")


def normalise(x, mean, std):
    return ((x - mean) / std).astype("float32")


def teacher_model(shape):
    inputs = keras.Input(shape)
    x = inputs
    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.4)(keras.layers.Dense(128, activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="teacher")


def student_model(shape, name):
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


def run(seed, x_train, y_train, x_test, y_test):
    keras.utils.set_random_seed(seed)
    crossentropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    teacher = teacher_model(x_train.shape[1:])
    teacher.compile(optimizer="adam", loss=crossentropy, metrics=["accuracy"])
    teacher.fit(x_train, y_train, epochs=FLAGS.teacher_epochs, batch_size=32, verbose=2)
    scratch = student_model(x_train.shape[1:], "student_scratch")
    initial = scratch.get_weights()
    scratch.compile(optimizer=keras.optimizers.Adam(3e-3), loss=crossentropy, metrics=["accuracy"])
    scratch.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=32, verbose=2)
    student = student_model(x_train.shape[1:], "student_kd")
    student.set_weights(initial)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"], alpha=FLAGS.alpha,
                      temperature=FLAGS.temperature)
    distiller.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=32, verbose=2)
    rows = [ModelRow(name, count_params(model), model_file_size(model), accuracy(model, x_test, y_test),
                     latency_ms(model, x_test[:1]))
            for name, model in (("teacher", teacher), ("student_scratch", scratch), ("student_kd", student))]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "student_int8.tflite")
        export_tflite(student, path, "int8", representative_data=x_train, int8_io=True)
        measured = artifacts.measure(path, "tflite", x_test, y_test)
    rows.append(ModelRow("student_kd_int8_tflite", count_params(student), measured["size_bytes"],
                         measured["accuracy"], measured["latency_ms_batch1"]))
    return rows


def main(_):
    (x_train, y_train), (x_test, y_test) = keras_kd.datasets.fsdd.load_data(FLAGS.data_dir)
    mean, std = float(x_train.mean()), float(x_train.std())
    x_train, x_test = normalise(x_train, mean, std), normalise(x_test, mean, std)
    all_rows = {}
    for seed in (int(s) for s in FLAGS.seeds):
        rows = run(seed, x_train, y_train, x_test, y_test)
        print(f"seed {seed}\n{format_table(rows)}", flush=True)
        all_rows[seed] = [row.as_dict() for row in rows]
    for name in [r["name"] for r in next(iter(all_rows.values()))]:
        acc = 100 * np.array([[r["accuracy"] for r in rows if r["name"] == name][0] for rows in all_rows.values()])
        print(f"{name}: {acc.mean():.2f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.2f} % over seeds {FLAGS.seeds}")
    if FLAGS.results:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
        with open(FLAGS.results, "w") as handle:
            json.dump({"train_clips": len(x_train), "test_clips": len(x_test), "runs": all_rows}, handle, indent=2)


if __name__ == "__main__":
    app.run(main)
