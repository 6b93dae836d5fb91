"""Distil a BiLSTM sentence classifier into a bag-of-embeddings student on movie-review polarity.

What it shows: keras-kd on text. `TextVectorization` turns sentences into token ids once;
the teacher (embeddings 128 + bidirectional LSTM) and the student (embeddings 16 averaged,
about 8x fewer parameters) both read the ids and output logits; the student is trained from
labels alone and by distillation from the same initial weights, and the three are compared.

Data: rt-polarity v1.0 (Pang and Lee 2005), 10,662 sentences, from `--data_dir`,
$KERAS_KD_DATA_DIR or `../shared/data/rt-polarity`, else downloaded from Cornell. There is no
official split: a fixed one (shuffled with seed 0, 10% test) is used, as documented in
`keras_kd.datasets.rt_polarity`.

    python examples/text/rt_polarity/distill_rt_polarity.py --seeds=0,1,2

Results of a run are in README.md beside this file.
"""

import json
import os

import numpy as np
from absl import app, flags

import keras_kd
from keras_kd.backend import keras
from keras_kd.report import ModelRow, accuracy, format_table, latency_ms, model_file_size
from keras_kd.utils import count_params

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with rt-polarity.pos and rt-polarity.neg.")
flags.DEFINE_list("seeds", ["0"], "Seeds (model initialisation and shuffling; the split is fixed).")
flags.DEFINE_integer("teacher_epochs", 4, "Teacher epochs.")
flags.DEFINE_integer("epochs", 12, "Student epochs.")
flags.DEFINE_integer("vocabulary", 20000, "Vocabulary size.")
flags.DEFINE_integer("sequence_length", 48, "Tokens per sentence.")
flags.DEFINE_float("alpha", 0.1, "Weight of the label loss.")
flags.DEFINE_float("temperature", 2.0, "Distillation temperature.")
flags.DEFINE_string("results", None, "Optional JSON file for the figures.")


def teacher_model():
    inputs = keras.Input((FLAGS.sequence_length,), dtype="int64")
    x = keras.layers.Embedding(FLAGS.vocabulary, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="teacher")


def student_model(name):
    inputs = keras.Input((FLAGS.sequence_length,), dtype="int64")
    x = keras.layers.Embedding(FLAGS.vocabulary, 16)(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name=name)


def run(seed, x_train, y_train, x_test, y_test):
    keras.utils.set_random_seed(seed)
    crossentropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    teacher = teacher_model()
    teacher.compile(optimizer="adam", loss=crossentropy, metrics=["accuracy"])
    teacher.fit(x_train, y_train, epochs=FLAGS.teacher_epochs, batch_size=64, verbose=2)
    scratch = student_model("student_scratch")
    initial = scratch.get_weights()
    scratch.compile(optimizer="adam", loss=crossentropy, metrics=["accuracy"])
    scratch.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=64, verbose=2)
    student = student_model("student_kd")
    student.set_weights(initial)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=FLAGS.alpha, temperature=FLAGS.temperature)
    distiller.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=64, verbose=2,
                  teacher_cache=keras_kd.TeacherCache.build(teacher, x_train))  # text: no augmentation
    return [ModelRow(name, count_params(model), model_file_size(model), accuracy(model, x_test, y_test),
                     latency_ms(model, x_test[:1]))
            for name, model in (("teacher", teacher), ("student_scratch", scratch), ("student_kd", student))]


def main(_):
    (train_text, y_train), (test_text, y_test) = keras_kd.datasets.rt_polarity.load_data(FLAGS.data_dir)
    vectorize = keras.layers.TextVectorization(max_tokens=FLAGS.vocabulary,
                                               output_sequence_length=FLAGS.sequence_length)
    vectorize.adapt(train_text.astype(str))
    x_train = np.asarray(vectorize(train_text.astype(str))).astype("int64")
    x_test = np.asarray(vectorize(test_text.astype(str))).astype("int64")
    all_rows = {}
    for seed in (int(s) for s in FLAGS.seeds):
        rows = run(seed, x_train, y_train, x_test, y_test)
        print(f"seed {seed}\n{format_table(rows)}", flush=True)
        all_rows[seed] = [row.as_dict() for row in rows]
    for name in ("teacher", "student_scratch", "student_kd"):
        acc = 100 * np.array([[r["accuracy"] for r in rows if r["name"] == name][0] for rows in all_rows.values()])
        print(f"{name}: {acc.mean():.2f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.2f} % over seeds {FLAGS.seeds}")
    if FLAGS.results:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
        with open(FLAGS.results, "w") as handle:
            json.dump({"train_sentences": len(x_train), "test_sentences": len(x_test), "runs": all_rows}, handle,
                      indent=2)


if __name__ == "__main__":
    app.run(main)
