"""A cheaper pass of the frozen teachers: an inference copy in a lower precision.

`Distiller(..., teacher_dtype="bfloat16")` runs a bfloat16 copy of each teacher (weights and
arithmetic in bfloat16, logits cast back to float32) instead of the float32 teacher; the
student, its gradients and the loss stay float32. The teacher is frozen, so the copy never
needs gradients; it is refreshed from the float32 teacher at the start of every `fit` and
`evaluate`, so weights loaded into the teacher after construction reach it.

Where it pays: measured on this project's CPU (AMD EPYC, AVX512_BF16, no AMX; TensorFlow's
oneDNN kernels), the Fashion-MNIST teacher's forward pass takes 0.70x the float32 time; on
hardware without bfloat16 arithmetic it can be slower. The distillation loss moves by less than
`BFLOAT16_LOSS_RTOL` (relative) at the temperatures in use (tested in `tests/test_teacher_pass.py`;
the figures of the benchmark are in `docs/speed_benchmark.md`). It is therefore opt-in.

XLA for the teacher call alone was measured too (TensorFlow, the same teacher, batch 128): no
gain in float32 (1.00x) and slower in bfloat16 (1.63x the bfloat16 time without XLA), so it is
not offered; `compile(jit_compile=True)` still compiles the whole step where a user wants it.
"""

import hashlib

import numpy as np

from keras_kd.backend import keras, ops

TEACHER_DTYPES = (None, "float32", "bfloat16", "float16")
BFLOAT16_LOSS_RTOL = 0.02
"""Relative change of the distillation loss, bfloat16 teacher against float32, that the tests allow."""


def validate_teacher_dtype(dtype, has_features=False):
    """`dtype` as given, or a ValueError naming the accepted ones."""
    if dtype not in TEACHER_DTYPES:
        raise ValueError(f"`teacher_dtype` must be one of {TEACHER_DTYPES[1:]} or None; received {dtype!r}.")
    if has_features and dtype not in (None, "float32"):
        raise ValueError(
            f"`teacher_dtype={dtype!r}` runs a copy of the teacher's logits only; feature terms read the "
            "float32 teacher's layers. Drop `teacher_dtype` or the feature terms."
        )
    return dtype


def _with_dtype(layer, dtype):
    config = layer.get_config()
    if isinstance(layer, keras.layers.InputLayer):
        return layer.__class__.from_config(config)  # inputs stay float32; the first layer casts them
    return layer.__class__.from_config({**config, "dtype": dtype})


class TeacherPass:
    """The models that produce the teachers' logits: the teachers themselves, or inference copies.

    A plain object on purpose: Keras does not track it, so the copies are neither trained,
    nor saved, nor counted among the Distiller's weights (the config keeps `teacher_dtype`, and
    loading builds the copies again).
    """

    def __init__(self, teachers, dtype=None):
        self.teachers = list(teachers)
        self.dtype = None if dtype == "float32" else dtype
        self.models = self.teachers if self.dtype is None else [self._copy(t) for t in self.teachers]
        self._synced = None  # a digest of the teachers' weights last copied

    def _copy(self, teacher):
        try:
            copy = keras.models.clone_model(teacher, clone_function=lambda layer: _with_dtype(layer, self.dtype))
        except (ValueError, TypeError, NotImplementedError) as error:
            raise ValueError(
                f"`teacher_dtype={self.dtype!r}` needs a Sequential or functional teacher it can clone in "
                f"{self.dtype}; cloning `{teacher.name}` failed ({error}). Build the teacher with "
                f"`dtype='{self.dtype}'` yourself and pass it, or drop `teacher_dtype`."
            ) from error
        copy.trainable = False
        self._sync(teacher, copy)
        return copy

    @staticmethod
    def _sync(teacher, copy):
        copy.set_weights(teacher.get_weights())  # each variable casts to its own dtype

    def sync(self, owner=None):
        """Copy the float32 teachers' weights into the inference copies, where they changed.

        If they changed after `owner` (the Distiller) compiled its steps, those are dropped: JAX
        compiles untracked weights into the step as constants.
        """
        if self.dtype is None:
            return
        digest = hashlib.blake2b(digest_size=16)
        for teacher in self.teachers:
            for weight in teacher.get_weights():
                digest.update(np.ascontiguousarray(weight).tobytes())
        if digest.hexdigest() == self._synced:
            return
        for teacher, copy in zip(self.teachers, self.models):
            self._sync(teacher, copy)
        if self._synced is not None and owner is not None:
            owner.train_function = owner.test_function = None
        self._synced = digest.hexdigest()

    def __call__(self, index, x):
        """Teacher `index`'s float32 logits on `x`, in inference mode."""
        logits = self.models[index](x, training=False)
        return logits if self.dtype is None else ops.cast(logits, "float32")
