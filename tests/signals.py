"""Procedural 1-D signals: a classification task no example or built-in data set uses.

Each class is a sine of its own frequency, with a random phase and amplitude, under Gaussian
noise. A small convolutional teacher trained on a few thousand labels reads the frequency
whatever the phase; a dense student given a few dozen labels does not, but learns it from the
teacher's outputs on unlabelled signals. That gap is what the acceptance tests and the own-data
benchmark measure keras-kd by.
"""

import numpy as np

LENGTH = 32
CLASSES = 6


def signals(n, seed, classes=CLASSES, length=LENGTH, noise=0.6):
    """`(x, y)`: `n` signals of shape `(length, 1)` (float32) and their classes (int64)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    t = np.arange(length)
    frequencies = np.linspace(0.05, 0.40, classes)  # cycles per sample
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    amplitude = rng.uniform(0.5, 1.5, (n, 1))
    x = amplitude * np.sin(2 * np.pi * frequencies[y][:, None] * t + phase) + noise * rng.normal(size=(n, length))
    return x[..., None].astype("float32"), y.astype("int64")


def conv_teacher(keras, name="signal_teacher", classes=CLASSES, length=LENGTH):
    return keras.Sequential(
        [
            keras.Input((length, 1)),
            keras.layers.Conv1D(32, 7, activation="relu"),
            keras.layers.Conv1D(32, 5, activation="relu"),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(classes),
        ],
        name=name,
    )


def dense_student(keras, name="signal_student", width=32, classes=CLASSES, length=LENGTH):
    return keras.Sequential(
        [
            keras.Input((length, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(classes),
        ],
        name=name,
    )


def plain_keras_distillation(keras, student, teacher, x, epochs, temperature=2.0, batch_size=32, learning_rate=1e-3):
    """The reference: Hinton's loss at alpha 0 in a plain Keras `fit` on the teacher's softened
    probabilities (no keras-kd code), written from the paper: T^2 KL(softmax(t/T) || softmax(s/T))."""
    logits = np.asarray(teacher.predict(x, batch_size=256, verbose=0), "float64") / temperature
    soft = np.exp(logits - logits.max(axis=-1, keepdims=True))
    soft = (soft / soft.sum(axis=-1, keepdims=True)).astype("float32")

    def loss(targets, student_logits):
        probabilities = keras.activations.softmax(student_logits / temperature)
        return temperature**2 * keras.losses.kl_divergence(targets, probabilities)

    student.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    student.fit(x, soft, epochs=epochs, batch_size=batch_size, verbose=0)
    return student
