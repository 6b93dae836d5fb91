"""Callbacks the jobs add: the duration estimate, checked against the time the epochs took, and
the best epoch on validation kept, on a plain model and on a Distiller."""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras
from tests.conftest import make_mlp, weights_of


def _compiled(model):
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


class _Clock(keras.callbacks.Callback):
    """A clock for `keras_kd.training.callbacks` that each epoch advances by a set number of seconds, so
    the estimate is checked against known durations and not against a busy machine's."""

    def __init__(self, seconds_per_epoch):
        super().__init__()
        self.seconds_per_epoch, self.now = seconds_per_epoch, 1000.0

    def monotonic(self):
        return self.now

    def on_epoch_end(self, epoch, logs=None):  # listed before the estimate: its epoch has ended
        self.now += self.seconds_per_epoch[epoch]


def test_duration_estimate_leaves_out_the_traced_first_epoch_and_holds(data, monkeypatch):
    """Printed after epoch 3 for epochs 4..12 from epochs 2 and 3 alone (epoch 1 traces the step and
    the validation); then the time the 9 epochs took, beside it."""
    x, y = data
    seconds = [40.0, 2.0, 4.0] + [3.0] * 9  # a slow first epoch; 3 s an epoch after it, on average
    clock = _Clock(seconds)
    monkeypatch.setattr(keras_kd.callbacks, "time", clock)
    printed = []
    estimate = keras_kd.callbacks.DurationEstimate("student", print_fn=printed.append)
    _compiled(make_mlp(4)).fit(x, y, epochs=12, validation_data=(x[:8], y[:8]), verbose=0, callbacks=[clock, estimate])
    assert printed == [
        "[keras-kd] student: 3.00 s an epoch; the other 9 epochs need about 27 s.",
        "[keras-kd] student: the 9 epochs after the estimate took 27 s (3.00 s an epoch; estimated 3.00).",
    ]
    assert estimate.estimated_seconds == estimate.remaining_seconds == 27.0


def test_duration_estimate_times_whole_validation_cycles(data, monkeypatch):
    """With validation every 2nd epoch, epochs 3 to 6 (two cycles) are timed and the estimate is
    printed after epoch 6 for the 4 left."""
    x, y = data
    clock = _Clock([50.0, 10.0, 1.0, 5.0, 1.0, 5.0, 1.0, 5.0, 1.0, 5.0])
    monkeypatch.setattr(keras_kd.callbacks, "time", clock)
    printed = []
    estimate = keras_kd.callbacks.DurationEstimate("student", print_fn=printed.append, validation_freq=2)
    _compiled(make_mlp(4)).fit(x, y, epochs=10, verbose=0, callbacks=[clock, estimate])
    assert estimate.estimated_seconds == 12.0 and estimate.remaining_seconds == 12.0, printed


def test_duration_estimate_with_early_stopping_is_an_upper_bound(data, student):
    x, y = data
    printed = []
    estimate = keras_kd.callbacks.DurationEstimate("student", print_fn=printed.append, stops_early=True)
    _compiled(student).fit(x, y, epochs=4, verbose=0, callbacks=[estimate])
    assert printed and "need at most about" in printed[0]


class _Scores(keras.callbacks.Callback):
    """Feeds a made-up validation accuracy per epoch to the callbacks after it, and keeps each epoch's weights."""

    def __init__(self, scores, owner, losses=None):
        super().__init__()
        self.scores, self.owner, self.losses, self.weights = scores, owner, losses, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.scores[epoch]
        if self.losses is not None:
            logs["val_loss"] = self.losses[epoch]
        self.weights.append(weights_of(self.owner()))


@pytest.mark.parametrize("distilled", [False, True])
def test_keep_best_epoch_restores_the_best_weights_and_stops_after_patience(data, teacher, distilled, tmp_path):
    x, y = data
    student = make_mlp(4, name="student")
    scores = [0.2, 0.5, 0.4, 0.5, 0.45, 0.3, 0.9]  # best at epoch 2; 3 epochs without a strictly better one stop it
    if distilled:
        model = keras_kd.Distiller(student=student, teacher=teacher)
        model.compile(optimizer="adam", metrics=["accuracy"])
    else:
        model = _compiled(student)
    fed = _Scores(scores, lambda: student)
    keeper = keras_kd.callbacks.KeepBestEpoch(patience=3, state_path=str(tmp_path / "best"))
    model.fit(x, y, epochs=len(scores), verbose=0, callbacks=[fed, keeper])
    assert len(fed.weights) == 5  # epochs 3, 4, 5 brought nothing better: stopped after epoch 5
    assert keeper.best_epoch == 2 and keeper.best == pytest.approx(0.5)
    for kept, epoch_2 in zip(weights_of(student), fed.weights[1]):
        np.testing.assert_array_equal(kept, epoch_2)
    assert not all(np.array_equal(a, b) for a, b in zip(fed.weights[1], fed.weights[4]))  # it did train on
    saved = keras_kd.callbacks.KeepBestEpoch(state_path=str(tmp_path / "best"))  # as a resumed run reads it
    assert saved.best_epoch == 2 and [entry["epoch"] for entry in saved.epochs] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("distilled", [False, True])
def test_keep_best_epoch_breaks_an_accuracy_tie_by_the_lower_validation_loss(data, teacher, distilled, tmp_path):
    """A small validation set saturates (20 examples at 100 %) while the student still improves: an
    epoch of equal accuracy and lower validation loss is kept and resets the patience."""
    x, y = data
    student = make_mlp(4, name="student")
    scores = [0.5, 0.9, 0.9, 0.9, 0.9, 0.9]
    losses = [1.0, 0.8, 0.6, 0.7, 0.65, 0.5]  # epoch 3 beats epoch 2 by its loss; 4 and 5 do not: stop
    if distilled:
        model = keras_kd.Distiller(student=student, teacher=teacher)
        model.compile(optimizer="adam", metrics=["accuracy"])
    else:
        model = _compiled(student)
    fed = _Scores(scores, lambda: student, losses)
    keeper = keras_kd.callbacks.KeepBestEpoch(patience=2, state_path=str(tmp_path / "best"))
    model.fit(x, y, epochs=len(scores), verbose=0, callbacks=[fed, keeper])
    assert len(fed.weights) == 5 and keeper.best_epoch == 3 and keeper.best_tie_break == pytest.approx(0.6)
    for kept, epoch_3 in zip(weights_of(student), fed.weights[2]):
        np.testing.assert_array_equal(kept, epoch_3)
    resumed = keras_kd.callbacks.KeepBestEpoch(state_path=str(tmp_path / "best"))  # as a resumed run reads it
    assert (resumed.best_epoch, resumed.best_tie_break) == (3, pytest.approx(0.6))
    first_of_equals = keras_kd.callbacks.KeepBestEpoch(patience=2, tie_break=None)
    again = _Scores(scores, lambda: student, losses)
    model.fit(x, y, epochs=len(scores), verbose=0, callbacks=[again, first_of_equals])
    assert first_of_equals.best_epoch == 2
