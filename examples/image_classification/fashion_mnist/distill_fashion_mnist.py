"""Distil a CNN teacher into a CNN student about 25x smaller on Fashion-MNIST.

What it shows: the whole keras-kd workflow written out with the public API, as in the
Keras distillation example: train a teacher, train the same student architecture from
labels alone (the baseline), distil the student with `keras_kd.Distiller`, compare the
three on the test set, and save the student alone for deployment.

Data: Fashion-MNIST from Debian's `dataset-fashion-mnist` (`apt-get install -y
dataset-fashion-mnist`), a folder given with `--data_dir`, or `$KERAS_KD_DATA_DIR`;
only if none has it, Keras downloads it.

Run (either engine; prefix TF_USE_LEGACY_KERAS=1 for tf_keras):
    python examples/image_classification/fashion_mnist/distill_fashion_mnist.py --epochs=5
Results of a run are in README.md beside this file.
"""

from absl import app, flags

import keras_kd
from keras_kd.backend import keras
from keras_kd.report import ModelRow, accuracy, format_table, latency_ms, model_file_size
from keras_kd.utils import count_params

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with Fashion-MNIST's four *-ubyte.gz files.")
flags.DEFINE_integer("teacher_epochs", 8, "Epochs for the teacher.")
flags.DEFINE_integer("epochs", 8, "Epochs for each student.")
flags.DEFINE_integer("train_examples", 60000, "Use only the first N training images (quick runs).")
flags.DEFINE_float("alpha", 0.1, "Weight of the label loss.")
flags.DEFINE_float("temperature", 4.0, "Distillation temperature.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("student_path", "fashion_mnist_student.keras", "Where the distilled student goes.")


def main(_):
    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = keras_kd.datasets.fashion_mnist.load_data(FLAGS.data_dir)
    x_train, y_train = x_train[: FLAGS.train_examples], y_train[: FLAGS.train_examples]
    shape, classes = x_train.shape[1:], 10

    def classifier(model):
        model.compile(optimizer="adam", metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    # 1. The teacher: a wider CNN, trained on labels.
    teacher = classifier(keras_kd.models.build_model("fashion_mnist", "teacher", shape, classes))
    teacher.fit(x_train, y_train, epochs=FLAGS.teacher_epochs, batch_size=128, validation_split=0.1)

    # 2. The baseline: the student's architecture trained on labels alone.
    scratch = keras_kd.models.build_model("fashion_mnist", "student", shape, classes, "student_scratch")
    initial_weights = scratch.get_weights()
    classifier(scratch).fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=128, validation_split=0.1)

    # 3. The same student, from the same initial weights, distilled from the teacher.
    student = keras_kd.models.build_model("fashion_mnist", "student", shape, classes, "student_kd")
    student.set_weights(initial_weights)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),  # the stable Hinton loss, T^2 included
        alpha=FLAGS.alpha,
        temperature=FLAGS.temperature,
    )
    distiller.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=128, validation_split=0.1)
    distiller.evaluate(x_test, y_test)

    rows = [
        ModelRow(name, count_params(model), model_file_size(model), accuracy(model, x_test, y_test),
                 latency_ms(model, x_test[:1]))
        for name, model in (("teacher", teacher), ("student_scratch", scratch), ("student_kd", student))
    ]
    print(format_table(rows))
    # Ship the student alone: no teacher, no Distiller.
    student.save(FLAGS.student_path)
    print(f"Distilled student saved to {FLAGS.student_path}")


if __name__ == "__main__":
    app.run(main)
