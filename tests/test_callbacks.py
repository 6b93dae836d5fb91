"""Callbacks the jobs add: the duration estimate."""

import keras_kd
from keras_kd.backend import keras


def test_duration_estimate_prints_after_the_first_epoch(data, student):
    x, y = data
    printed = []
    student.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    student.fit(
        x, y, epochs=3, verbose=0, callbacks=[keras_kd.callbacks.DurationEstimate("student", print_fn=printed.append)]
    )
    assert len(printed) == 1 and "the other 2 epochs need about" in printed[0]
