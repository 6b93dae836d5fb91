"""Shared timing helpers of the benchmarks: wall time per epoch, recorded by a callback."""

import statistics
import time

from keras_kd.backend import keras


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's wall time; the first epoch (tracing, warm-up) is kept apart."""

    def __init__(self):
        super().__init__()
        self.durations = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self._start)

    @property
    def steady_epoch_seconds(self):
        """Median epoch time after the first epoch (the first epoch alone if there is one)."""
        steady = self.durations[1:] or self.durations
        return statistics.median(steady)
