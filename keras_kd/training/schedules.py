"""Schedules for alpha and temperature: callables of the epoch, serializable, as Keras schedules are.

The Distiller keeps alpha and T in variables, so `callbacks.DistillationScheduler` can
change them every epoch without retracing the training step.
"""

import math

from keras_kd.registry import Registry

# By class name or in lower case: {"name": "warmup", ...} in a YAML config.
SCHEDULES = Registry("schedule", case_sensitive=False)


class Schedule:
    """Base: `schedule(epoch) -> value`, with `get_config`/`from_config`."""

    def __call__(self, epoch):
        return self.value(int(epoch))

    def get_config(self):
        return dict(self.__dict__)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@SCHEDULES.register()
class Constant(Schedule):
    """The same value every epoch."""

    def __init__(self, value):
        self.value_ = float(value)

    def value(self, epoch):
        return self.value_

    def get_config(self):
        return {"value": self.value_}


class _Ramp(Schedule):
    """From `start` at epoch 0 to `end` at epoch `epochs`, constant after; `shape` bends the way."""

    def __init__(self, start, end, epochs):
        if int(epochs) < 1:
            raise ValueError(f"`epochs` must be >= 1; received {epochs!r}.")
        self.start, self.end, self.epochs = float(start), float(end), int(epochs)

    def value(self, epoch):
        fraction = min(max(epoch, 0), self.epochs) / self.epochs
        return self.start + (self.end - self.start) * self.shape(fraction)


@SCHEDULES.register()
class Linear(_Ramp):
    """A straight line from `start` to `end` over `epochs` epochs."""

    @staticmethod
    def shape(fraction):
        return fraction


@SCHEDULES.register()
class Cosine(_Ramp):
    """Half a cosine from `start` to `end` over `epochs` epochs."""

    @staticmethod
    def shape(fraction):
        return 0.5 * (1.0 - math.cos(math.pi * fraction))


@SCHEDULES.register()
class WarmUp(Linear):
    """Linear warm-up to `end` over `epochs` epochs, as DKD ramps its loss in over 20 epochs.

    For alpha, `WarmUp(start=1.0, end=0.1, epochs=20)` trains on labels first and brings
    the distillation term in gradually.
    """


def get(identifier):
    """A schedule from a number (constant), a callable, or `{"name": ..., **arguments}`."""
    if identifier is None or isinstance(identifier, Schedule) or callable(identifier):
        return identifier
    if isinstance(identifier, (int, float)):
        return Constant(identifier)
    if isinstance(identifier, dict):
        spec = dict(identifier)
        return SCHEDULES.lookup(spec.pop("name", None))(**spec)
    raise ValueError(f"Could not interpret schedule {identifier!r}.")
