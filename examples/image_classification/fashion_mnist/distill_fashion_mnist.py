"""Distil a CNN teacher into a CNN student 9.9x smaller on Fashion-MNIST, on a transfer set.

What it shows: the keras-kd workflow written out with the public API. A teacher learns from
every training label; the student has the labels of only a few thousand images, and many more
images without labels (the usual case: labelling is what costs). The same student architecture
learns from its labels alone (the baseline), then from the same initial weights by distillation
on `keras_kd.transfer_set((x_labeled, y_labeled), x_unlabeled)` with as many optimizer steps;
the teacher's outputs are computed once (`keras_kd.TeacherCache`). The three are compared on
the test set and the student is saved alone for deployment.

Data: Fashion-MNIST from Debian's `dataset-fashion-mnist` (`apt-get install -y
dataset-fashion-mnist`), a folder given with `--data_dir`, or `$KERAS_KD_DATA_DIR`;
only if none has it, Keras downloads it.

Run (either engine; prefix TF_USE_LEGACY_KERAS=1 for tf_keras):
    python examples/image_classification/fashion_mnist/distill_fashion_mnist.py --epochs=5
Results of a run are in README.md beside this file.
"""

import math

from absl import app, flags

import keras_kd
from keras_kd.backend import keras
from keras_kd.jobs.report import format_table, measure_model

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with Fashion-MNIST's four *-ubyte.gz files.")
flags.DEFINE_integer("teacher_epochs", 8, "Epochs for the teacher.")
flags.DEFINE_integer("epochs", 8, "Epochs of the distilled student (the baseline gets as many steps).")
flags.DEFINE_integer("train_examples", 60000, "Use only the first N training images (quick runs).")
flags.DEFINE_integer(
    "labeled_examples", 5000, "Training images whose labels the student gets; the rest come without labels."
)
flags.DEFINE_string("recipe", "hinton", "keras_kd.training.recipes name.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("student_path", "fashion_mnist_student.keras", "Where the distilled student goes.")


def main(_):
    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = keras_kd.datasets.fashion_mnist.load_data(FLAGS.data_dir)
    x_train, y_train = x_train[: FLAGS.train_examples], y_train[: FLAGS.train_examples]
    shape, classes = x_train.shape[1:], 10

    def classifier(model):
        model.compile(
            optimizer="adam", metrics=["accuracy"], loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        return model

    # 1. The teacher: a wider CNN, trained on every label.
    teacher = classifier(keras_kd.models.build_model("fashion_mnist", "teacher", shape, classes))
    teacher.fit(x_train, y_train, epochs=FLAGS.teacher_epochs, batch_size=128, validation_split=0.1)

    # 2. The student's data: a few labelled images, the rest without labels.
    x_labeled, y_labeled = x_train[: FLAGS.labeled_examples], y_train[: FLAGS.labeled_examples]
    x_pool = x_train[FLAGS.labeled_examples :]
    x_transfer, y_transfer = keras_kd.transfer_set((x_labeled, y_labeled), x_pool)  # missing labels: -1

    # 3. The baseline: the student's architecture on its labels alone, as many steps as step 4.
    scratch = keras_kd.models.build_model("fashion_mnist", "student", shape, classes, "student_scratch")
    initial_weights = scratch.get_weights()
    steps = FLAGS.epochs * math.ceil(len(x_transfer) / 128)
    classifier(scratch).fit(
        x_labeled, y_labeled, epochs=math.ceil(steps / math.ceil(len(x_labeled) / 128)), batch_size=128, verbose=0
    )

    # 4. The same student, from the same initial weights, distilled on the transfer set.
    student = keras_kd.models.build_model("fashion_mnist", "student", shape, classes, "student_kd")
    student.set_weights(initial_weights)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(), metrics=[keras.metrics.SparseCategoricalAccuracy()], recipe=FLAGS.recipe
    )
    cache = keras_kd.TeacherCache.build(teacher, x_transfer)  # the teacher runs once
    distiller.fit(x_transfer, y_transfer, epochs=FLAGS.epochs, batch_size=128, teacher_cache=cache)
    print(distiller.evaluate(x_test, y_test, return_dict=True))

    rows = [
        measure_model(name, model, x_test, y_test)
        for name, model in (("teacher", teacher), ("student_scratch", scratch), ("student_kd", student))
    ]
    print(format_table(rows))
    # Ship the student alone: no teacher, no Distiller.
    student.save(FLAGS.student_path)
    print(f"Distilled student saved to {FLAGS.student_path}")


if __name__ == "__main__":
    app.run(main)
