"""Callbacks that change how the Distiller distils while it trains."""

from keras_kd import schedules
from keras_kd.backend import keras


class DistillationScheduler(keras.callbacks.Callback):
    """Set the Distiller's alpha and/or temperature at the start of every epoch.

    Args:
        alpha: a schedule (`keras_kd.schedules`, any callable of the epoch, a number, or a
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
    """After the first epoch, print how long the remaining epochs should take.

    A distillation run can take hours; the first epoch's time (tracing included, so the
    estimate errs long) tells the user early whether to wait or to shrink the run.
    """

    def __init__(self, label="training", print_fn=print):
        super().__init__()
        self.label = label
        self.print_fn = print_fn
        self._started = None
        self._epochs = None

    def on_train_begin(self, logs=None):
        import time

        self._started = time.monotonic()
        self._epochs = self.params.get("epochs") if self.params else None

    def on_epoch_end(self, epoch, logs=None):
        import time

        if epoch != 0 or not self._epochs or self._epochs < 2:
            return
        seconds = time.monotonic() - self._started
        remaining = seconds * (self._epochs - 1)
        self.print_fn(
            f"[keras-kd] {self.label}: first epoch {seconds:.1f} s; the other {self._epochs - 1} "
            f"epochs need about {_duration(remaining)}."
        )


def _duration(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
