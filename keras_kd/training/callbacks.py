"""Callbacks that change how the Distiller distils while it trains, and the jobs' own: the best
epoch on validation kept, and an early estimate of the run's duration."""

import time

from keras_kd.backend import keras
from keras_kd.training import schedules


class DistillationScheduler(keras.callbacks.Callback):
    """Set the Distiller's alpha and/or temperature at the start of every epoch.

    Args:
        alpha: a schedule (`keras_kd.training.schedules`, any callable of the epoch, a number, or a
            spec dict such as `{"name": "warmup", "start": 1.0, "end": 0.1, "epochs": 20}`).
        temperature: the same, for T.
        verbose: print the values each epoch.

    The values in force are added to the epoch's logs as `alpha` and `temperature`.
    """

    def __init__(self, alpha=None, temperature=None, verbose=0):
        super().__init__()
        self.alpha = schedules.get(alpha)
        self.temperature = schedules.get(temperature)
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        if self.alpha is not None:
            model.alpha = self.alpha(epoch)
        if self.temperature is not None:
            model.temperature = self.temperature(epoch)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: alpha={model.alpha:.4f}, temperature={model.temperature:.4f}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["alpha"] = self.model.alpha
            logs["temperature"] = self.model.temperature


class LossCurriculum(keras.callbacks.Callback):
    """Calls the distillation loss's `on_epoch_begin(epoch)` (CTKD's reversal schedule) and logs
    a learned temperature as `learned_temperature`; the Distiller's `fit` adds it when the loss has one."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.distillation_loss_fn.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch, logs=None):
        layer = getattr(self.model.distillation_loss_fn, "trainable_layer", None)
        if logs is not None and hasattr(layer, "value"):
            logs["learned_temperature"] = layer.value()


class SnapshotTeacher(keras.callbacks.Callback):
    """Self-distillation: every `every_n_epochs`, the teacher becomes a copy of the student.

    The Distiller's teacher must have the student's architecture (build it with
    `keras_kd.utils.snapshot(student)`); its weights are overwritten, it stays frozen.
    """

    def __init__(self, every_n_epochs=1):
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"`every_n_epochs` must be >= 1; received {every_n_epochs!r}.")
        self.every_n_epochs = int(every_n_epochs)

    def on_train_begin(self, logs=None):
        student, teacher = self.model.student, self.model.teacher
        shapes = [tuple(w.shape) for w in student.weights]
        if shapes != [tuple(w.shape) for w in teacher.weights]:
            raise ValueError(
                "SnapshotTeacher copies the student's weights into the teacher, but their "
                "architectures differ; make the teacher with keras_kd.utils.snapshot(student)."
            )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self.model.teacher.set_weights(self.model.student.get_weights())


class DurationEstimate(keras.callbacks.Callback):
    """Early in a run, print how long the remaining epochs should take.

    A distillation run can take hours; an early estimate tells the user whether to wait or to
    shrink the run. The first epochs trace the training step and the first validation the
    evaluation step, so the estimate is timed over the `2 * validation_freq` epochs after the first
    validated one (epochs 2 and 3 when every epoch is validated): steady epochs, a validation in
    each cycle, two of them so that one slow epoch does not set the figure. `estimated_seconds`
    keeps the figure, `remaining_seconds` the time those epochs took.

    Args:
        label: what trains, for the message.
        validation_freq: `fit`'s `validation_freq` (an int).
        stops_early: the run may stop before its last epoch (`KeepBestEpoch` with patience): the
            estimate is then an upper bound, and the message says so.
    """

    def __init__(self, label="training", print_fn=print, validation_freq=1, stops_early=False):
        super().__init__()
        self.label, self.print_fn = label, print_fn
        self.validation_freq, self.stops_early = max(1, int(validation_freq)), stops_early
        self.estimated_seconds = self.remaining_seconds = None
        self._epochs = self._first = self._timed_from = self._estimated_at = None
        self._last = self._per_epoch = self._estimated_epoch = None

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs") if self.params else None
        self._first = None

    def on_epoch_begin(self, epoch, logs=None):
        self._first = epoch if self._first is None else self._first  # a resumed run starts later

    def on_epoch_end(self, epoch, logs=None):
        self._last = epoch
        done = epoch - self._first + 1  # epochs of this fit so far
        if done == self.validation_freq:
            self._timed_from = time.monotonic()
        elif done == 3 * self.validation_freq and self._epochs and self._epochs > epoch + 1:
            now = time.monotonic()
            per_epoch = (now - self._timed_from) / (2 * self.validation_freq)
            left = self._epochs - epoch - 1
            self.estimated_seconds, self._estimated_at = per_epoch * left, now
            self._per_epoch, self._estimated_epoch = per_epoch, epoch
            bound = "at most about" if self.stops_early else "about"
            self.print_fn(
                f"[keras-kd] {self.label}: {per_epoch:.2f} s an epoch; the other {left} epochs need "
                f"{bound} {_duration(self.estimated_seconds)}."
            )

    def on_train_end(self, logs=None):
        if self._estimated_at is None:
            return
        self.remaining_seconds = time.monotonic() - self._estimated_at
        epochs = self._last - self._estimated_epoch
        if epochs > 0:  # what the estimate is checked against, in the same log
            self.print_fn(
                f"[keras-kd] {self.label}: the {epochs} epochs after the estimate took "
                f"{_duration(self.remaining_seconds)} ({self.remaining_seconds / epochs:.2f} s an epoch; "
                f"estimated {self._per_epoch:.2f})."
            )


class KeepBestEpoch(keras.callbacks.Callback):
    """Keep the weights of the best epoch on validation data, and restore them when training ends.

    The one rule by which a job trains every model it compares (the student from labels and the
    distilled student alike): at each validation, `monitor` is read; a strictly better value, or an
    equal one with a lower `tie_break` (the validation loss), keeps that epoch's weights (the
    student's, when the model is a `Distiller`). The tie-break matters on a small validation set,
    where the accuracy saturates while the student still improves: 20 examples tie at 100 % from
    an early epoch on. After
    `patience` validations without improvement training stops; at the end the kept weights are
    restored. Epochs without validation (`validation_freq` > 1) count for nothing.

    Every epoch's logs are kept in `epochs` (for the report's history and curves). With
    `state_path`, the state goes to `state_path.json` and the best weights to
    `state_path.weights.h5` as they change, so a run resumed after a kill keeps what it found.

    Args:
        monitor: a validation metric where higher is better (default `val_accuracy`).
        patience: validations without improvement before stopping; None: never stop early.
        tie_break: a validation metric where lower is better, which decides between epochs of an
            equal `monitor` (default `val_loss`; None: the first of equals is kept).
    """

    def __init__(self, monitor="val_accuracy", patience=None, state_path=None, tie_break="val_loss"):
        super().__init__()
        self.monitor, self.patience, self.state_path, self.tie_break = monitor, patience, state_path, tie_break
        self.epochs, self.best, self.best_epoch, self.wait = [], None, None, 0
        self.best_tie_break = None
        self.steps_per_epoch = None
        self._best_weights = None
        self.load_state()

    def _files(self):
        return f"{self.state_path}.json", f"{self.state_path}.weights.h5"

    def load_state(self):
        """Read the state a killed run saved (no-op without `state_path` or a saved state)."""
        import json
        import os

        if self.state_path is None or not os.path.exists(self._files()[0]):
            return self
        with open(self._files()[0]) as handle:
            state = json.load(handle)
        self.epochs, self.best, self.best_epoch = state["epochs"], state["best"], state["best_epoch"]
        self.wait, self.steps_per_epoch = state["wait"], state.get("steps_per_epoch")
        self.best_tie_break = state.get("best_tie_break")
        return self

    def _save_state(self):
        from keras_kd import atomic

        state = {
            "epochs": self.epochs,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_tie_break": self.best_tie_break,
            "wait": self.wait,
            "steps_per_epoch": self.steps_per_epoch,
        }
        atomic.write_json(self._files()[0], state)

    def _trained(self):
        return getattr(self.model, "student", self.model)

    def on_train_begin(self, logs=None):
        self.steps_per_epoch = (self.params or {}).get("steps") or self.steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items() if _is_number(value)}
        self.epochs = [entry for entry in self.epochs if entry["epoch"] != epoch + 1]
        self.epochs.append({"epoch": epoch + 1, **logs})
        if self.monitor in logs:
            if self._better(logs):
                self.best, self.best_epoch, self.wait = logs[self.monitor], epoch + 1, 0
                self.best_tie_break = logs.get(self.tie_break)
                self._best_weights = self._trained().get_weights()
                if self.state_path is not None:
                    from keras_kd import atomic

                    atomic.save_weights(self._trained(), self._files()[1])
            else:
                self.wait += 1
                if self.patience is not None and self.wait >= self.patience:
                    self.model.stop_training = True
        if self.state_path is not None:
            self._save_state()

    def _better(self, logs):
        """True if this epoch beats the kept one: a higher `monitor`, or an equal one and a lower `tie_break`."""
        value = logs[self.monitor]
        if self.best is None or value > self.best:
            return True
        tie_break = logs.get(self.tie_break)
        return value == self.best and None not in (tie_break, self.best_tie_break) and tie_break < self.best_tie_break

    def on_train_end(self, logs=None):
        import os

        if self._best_weights is not None:
            self._trained().set_weights(self._best_weights)
        elif self.best_epoch is not None and self.state_path is not None and os.path.exists(self._files()[1]):
            self._trained().load_weights(self._files()[1])  # the best was found before a kill

    def selection(self):
        """What was kept: `{"best_epoch", "validation_accuracy", "epochs_trained"}` (None before any validation)."""
        return {
            "best_epoch": self.best_epoch,
            "validation_accuracy": self.best,
            "epochs_trained": self.epochs[-1]["epoch"] if self.epochs else 0,
        }


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return getattr(value, "ndim", 0) == 0


def _duration(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
