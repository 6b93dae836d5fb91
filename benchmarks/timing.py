"""Shared timing helpers of the benchmarks: wall time and CPU time per epoch, recorded by a callback.

CPU time (all threads of the process, `time.process_time`) is the work an epoch took; on cores
shared with other jobs it moves far less than wall time, so it cross-checks wall-time ratios."""

import statistics
import time

from keras_kd.backend import keras


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's wall time; the first epoch (tracing, warm-up) is kept apart."""

    def __init__(self):
        super().__init__()
        self.durations = []
        self.cpu_durations = []
        self._start = self._cpu_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self._start)
        self.cpu_durations.append(time.process_time() - self._cpu_start)

    @property
    def steady_epoch_seconds(self):
        """Median epoch time after the first epoch (the first epoch alone if there is one)."""
        steady = self.durations[1:] or self.durations
        return statistics.median(steady)

    @property
    def steady_epoch_cpu_seconds(self):
        """Median CPU time (all threads) of the epochs after the first."""
        steady = self.cpu_durations[1:] or self.cpu_durations
        return statistics.median(steady)
