"""Pruning schedules with TF-MOT's semantics, in plain Python for any Keras backend.

A schedule maps a training step to `(prune now?, target sparsity)`: pruning happens at
steps in [begin_step, end_step] (end_step = -1: forever) every `frequency` steps, exactly
as `tfmot.sparsity.keras.ConstantSparsity` and `PolynomialDecay` decide.
"""


def validate_sparsity(value, argument):
    """Return `value` as a float, or raise a ValueError unless 0 <= value < 1."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{argument}` must be a number in [0, 1); received {value!r}.") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{argument}` must lie in [0, 1) (1 would remove every weight); received {value!r}.")
    return value


class PruningSchedule:
    """The base of the pruning schedules: when to prune, and to what sparsity.

    Calling a schedule with a training step returns `(should_prune, sparsity)`; subclasses
    define `sparsity(step)` and `final_sparsity`.

    Args:
        begin_step: the first step at which weights are pruned (>= 0).
        end_step: the last such step, or -1 for no end.
        frequency: prune every `frequency` steps from `begin_step` (>= 1).

    Raises:
        ValueError: a negative `begin_step`, an `end_step` before it, a `frequency` below 1.
    """

    def __init__(self, begin_step: int, end_step: int, frequency: int):
        if int(begin_step) < 0:
            raise ValueError(f"`begin_step` must be >= 0; received {begin_step!r}.")
        if int(end_step) != -1 and int(end_step) < int(begin_step):
            raise ValueError(f"`end_step` must be -1 or >= begin_step; received {end_step!r}.")
        if int(frequency) < 1:
            raise ValueError(f"`frequency` must be >= 1; received {frequency!r}.")
        self.begin_step, self.end_step, self.frequency = int(begin_step), int(end_step), int(frequency)

    def should_prune(self, step: int) -> bool:
        """Whether weights are pruned at `step`."""
        in_range = step >= self.begin_step and (self.end_step < 0 or step <= self.end_step)
        return in_range and (step - self.begin_step) % self.frequency == 0

    def __call__(self, step):
        return self.should_prune(step), self.sparsity(step)


class ConstantSparsity(PruningSchedule):
    """The same `target_sparsity` at every pruning step."""

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = validate_sparsity(target_sparsity, "target_sparsity")

    def sparsity(self, step):
        return self.target_sparsity

    @property
    def final_sparsity(self):
        return self.target_sparsity


class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` between begin and end, with a cubic curve."""

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100):
        if int(end_step) < 0:
            raise ValueError("PolynomialDecay needs an `end_step` >= begin_step.")
        super().__init__(begin_step, end_step, frequency)
        self.initial_sparsity = validate_sparsity(initial_sparsity, "initial_sparsity")
        self.final_sparsity = validate_sparsity(final_sparsity, "final_sparsity")
        self.power = power

    def sparsity(self, step):
        span = max(self.end_step - self.begin_step, 1)
        progress = min(1.0, max(0.0, (step - self.begin_step) / span))
        return (self.initial_sparsity - self.final_sparsity) * (1 - progress) ** self.power + self.final_sparsity
