"""The teacher's outputs kept by default: a frozen teacher in inference mode gives the same logits for
the same example every epoch, so `Distiller.fit` runs it once over in-memory data and reuses them.

`fit` keeps them (a `TeacherCache` of `x`, and one of `validation_data`) when all of these hold:

- `x` is a NumPy array or a dict of NumPy arrays (datasets, generators and `PyDataset`s may
  reshuffle or augment: the teacher runs live on them, as `fit(teacher_cache=TeacherCache.build(...))`
  can still cache a finite dataset in a fixed order);
- the Distiller augments nothing (function matching's teacher sees each step's view), has no
  feature terms (they need the teacher's layers), one teacher, no `teacher_dtype`, and no
  `SnapshotTeacher` callback (self-distillation changes the teacher during `fit`);
- the logits fit in `max_bytes` (default `DEFAULT_MAX_BYTES`); beyond it the teacher runs live,
  said in one line.

The logits travel with their rows, so shuffling, `validation_split`, `sample_weight` and transfer
sets (labels of -1) stay aligned. `fit(teacher_cache=False)` turns it off.
"""

import contextlib
import random
import sys

import numpy as np

from keras_kd.data.keys import split_inputs, unpack
from keras_kd.teacher.cache import TeacherCache

DEFAULT_MAX_BYTES = 1 << 30
"""The most memory the kept logits may take (1 GiB): `fit(teacher_cache_max_bytes=...)` changes it."""


def _is_arrays(x):
    if isinstance(x, dict):
        return bool(x) and all(isinstance(value, np.ndarray) for value in x.values())
    return isinstance(x, np.ndarray)


def _rows(x):
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


@contextlib.contextmanager
def _random_state_kept():
    """Leave Python's, NumPy's and PyTorch's random states as they were: the teacher's pass (PyTorch's
    data loader draws a seed) must not change how `fit` then shuffles, so that a seeded run trains
    the same with kept logits as with the teacher on every step."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    torch = sys.modules.get("torch")
    torch_state = torch.get_rng_state() if torch is not None else None
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if torch_state is not None:
            torch.set_rng_state(torch_state)


def why_live(distiller, x, callbacks):
    """Why the teacher must run on every step for this `fit`, or None when its outputs can be kept."""
    from keras_kd.training.callbacks import SnapshotTeacher

    student_x, teacher_x = split_inputs(unpack(x)[0])
    if student_x is not teacher_x:
        return "each model reads inputs of its own"
    if not _is_arrays(x) or unpack(x)[1] is not None:
        return "the data is not in memory as arrays"
    if distiller.augmentation is not None:
        return "the Distiller augments every batch"
    if distiller.on_policy is not None:
        return "the student writes part of every batch (on_policy)"
    if distiller.features:
        return "feature terms need the teacher's layers"
    if len(distiller.teachers) > 1:
        return "several teachers"
    if distiller.teacher_dtype:
        return "a teacher_dtype was asked for"
    if any(isinstance(callback, SnapshotTeacher) for callback in callbacks or []):
        return "SnapshotTeacher changes the teacher during fit"
    return None


def _logit_bytes(teacher, x):
    """The bytes of float32 logits for every row of `x`, from the teacher's output on one row."""
    one = {key: value[:1] for key, value in x.items()} if isinstance(x, dict) else x[:1]
    shape = tuple(int(dim) for dim in teacher(one, training=False).shape)  # no copy: a 16-bit tensor too
    return int(np.prod(shape)) * 4 * _rows(x)


def keep_teacher_outputs(distiller, x, kwargs, max_bytes=None):
    """`(x, kwargs)` with the teacher's logits packed into `x` and into array `validation_data`
    when they can be kept (see the module's docstring), else unchanged; says why not when the data
    is in memory but the logits are over `max_bytes`."""
    if why_live(distiller, x, kwargs.get("callbacks")) is not None:
        return x, kwargs
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    needed = _logit_bytes(distiller.teacher, x)
    validation = kwargs.get("validation_data")
    validation_x = validation[0] if isinstance(validation, (tuple, list)) and validation else None
    if validation_x is not None and _is_arrays(validation_x) and split_inputs(validation_x)[0] is validation_x:
        needed += _logit_bytes(distiller.teacher, validation_x)
    else:
        validation_x = None
    if needed > max_bytes:
        print(
            f"keras-kd: the teacher's logits would take {needed / 2**20:,.0f} MiB, over the {max_bytes / 2**20:,.0f} "
            "MiB kept by default, so the teacher runs on every step (fit(teacher_cache_max_bytes=...) raises the "
            "limit; keras_kd.TopKTeacherCache keeps the top classes only).",
            flush=True,
        )
        return x, kwargs
    with _random_state_kept():
        x = TeacherCache.build(distiller.teacher, x).attach(x)
        if validation_x is not None:
            packed = TeacherCache.build(distiller.teacher, validation_x).attach(validation_x, "validation_data")
            kwargs = {**kwargs, "validation_data": (packed, *validation[1:])}
    return x, kwargs
