"""Numerical safety of every registered loss, as properties (hypothesis) over random logits.

Logits of magnitude up to 1e4, temperatures in [0.05, 100], batches of 1 to 512 rows and 2 to
1000 classes, given as float16, bfloat16 or float32, some with constant rows (a uniform softmax)
or constant columns (every row the same): every loss is finite, non-negative (each is
a divergence, a distance or a cross-entropy), zero when the student equals the teacher (all but
the soft-target cross-entropy, which is then the teacher's entropy), and its gradient with
respect to the student's logits is finite. Sequences of padding alone (every token's weight 0)
give every per-token loss a finite value, 0, and a finite gradient.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_kd.backend import BACKEND, is_tensorflow_backed, keras, ops, to_numpy
from keras_kd.losses import (
    LOSSES,
    CRDLoss,
    DISTLoss,
    FeatureLoss,
    KerasCustomLoss,
    SoftTargetCrossentropy,
    SoftTargetLoss,
    WeightedLosses,
    nce_loss,
)
from tests.gradients import gradient

# One instance per registered class. CRD scores a learned head's embeddings against a memory, not
# logits: its NCE objective is checked on its own below. KerasCustomLoss runs the user's own
# `compute_loss` and WeightedLosses sums the losses checked here: neither has values of its own.
_NOT_OWN = (CRDLoss, KerasCustomLoss, WeightedLosses)
_CLASSES = sorted({cls for cls in LOSSES.values() if cls not in _NOT_OWN}, key=lambda cls: cls.__name__)
# DIST as its authors wrote it: a constant row or column (a batch of one, a saturated softmax)
# correlates 0, even with itself.
_NOT_ZERO_AT_EQUALITY = (SoftTargetCrossentropy, DISTLoss)
# RKD's angle term compares every triple of rows (memory grows with batch^3): batches up to 64.
_MAX_BATCH = {"RKDLoss": 64}
BATCHES, CLASSES = (1, 2, 7, 64, 512), (2, 3, 10, 100, 1000)
PROPERTY_SETTINGS = settings(
    max_examples=10 if is_tensorflow_backed() else 5,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def _make(cls):
    if cls is SoftTargetLoss:
        return SoftTargetLoss(keras.losses.KLDivergence())
    return cls()


def _shape(cls, batch, classes):
    if cls.__name__ == "AttentionTransferLoss":  # feature maps (batch, height, width, channels)
        return (batch, 1, classes, 1)
    return (batch, classes)


@st.composite
def cases(draw, cls):
    # Sizes from fixed sets that span the ranges, so that JAX compiles each shape once for all losses.
    batch = draw(st.sampled_from([b for b in BATCHES if b <= _MAX_BATCH.get(cls.__name__, 512)]))
    classes = draw(st.sampled_from(CLASSES))
    magnitude = 10.0 ** draw(st.floats(-3.0, 4.0))
    temperature = draw(st.sampled_from([0.05, 1.0, 100.0]) | st.floats(0.05, 100.0))
    dtype = draw(st.sampled_from(["float16", "bfloat16", "float32"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    shape = _shape(cls, batch, classes)
    teacher = rng.normal(size=shape) * magnitude
    student = rng.normal(size=shape) * magnitude
    if draw(st.booleans()):  # one class far ahead of the rest: one-hot soft targets at low T
        teacher.reshape(batch, -1)[:, 0] = magnitude
    constant = draw(st.sampled_from(["none", "rows", "columns"]))
    if constant == "rows":  # each row one value: a uniform softmax, zero variance across classes
        teacher = np.broadcast_to(teacher.reshape(batch, -1)[:, :1], (batch, classes)).reshape(shape).copy()
        student = np.broadcast_to(student.reshape(batch, -1)[:, :1], (batch, classes)).reshape(shape).copy()
    elif constant == "columns":  # every row the same: zero variance across the batch
        teacher = np.broadcast_to(teacher[:1], shape).copy()
        student = np.broadcast_to(student[:1], shape).copy()
    teacher = np.clip(teacher, -1e4, 1e4).astype("float32")
    student = np.clip(student, -1e4, 1e4).astype("float32")
    labels = rng.integers(0, classes, size=batch)
    return teacher, student, labels, float(temperature), dtype


def _compiled(fn):
    """JAX compiles the function once per shape (op by op, each new shape costs seconds)."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _gradient(fn, x):
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.jit(jax.grad(fn))(np.asarray(x, "float32")))
    return gradient(fn, x)


def _value(loss, teacher, student, labels, temperature, dtype):
    t = ops.cast(ops.convert_to_tensor(teacher), dtype)
    s = ops.cast(ops.convert_to_tensor(student), dtype)
    kwargs = {"labels": ops.convert_to_tensor(labels)} if loss.needs_labels else {}
    return loss(t, s, temperature=temperature, **kwargs)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_loss_is_finite_non_negative_zero_at_equality_with_finite_gradients(cls):
    loss = _make(cls)

    @PROPERTY_SETTINGS
    @given(cases(cls))
    def check(case):
        teacher, student, labels, temperature, dtype = case
        # float32 rounding of a divergence near 0 (about 1e-7), scaled by T^2 as the losses are (CTKD
        # scales by its own, learned temperature).
        scale = loss.temperature_layer.value() if hasattr(loss, "temperature_layer") else temperature
        tolerance = 1e-6 * max(1.0, scale**2)
        value_of = _compiled(lambda t, s: _value(loss, t, s, labels, temperature, dtype))
        value = float(to_numpy(value_of(teacher, student)))
        assert np.isfinite(value), f"{cls.__name__} = {value}"
        assert value >= -tolerance, f"{cls.__name__} = {value} < 0"
        if cls not in _NOT_ZERO_AT_EQUALITY:
            same = float(to_numpy(value_of(teacher, teacher)))
            assert abs(same) <= tolerance, f"{cls.__name__}(t, t) = {same}, not 0"
        grad = _gradient(lambda s: _value(loss, teacher, s, labels, temperature, dtype), student)
        assert np.isfinite(grad).all(), f"{cls.__name__}: non-finite gradient"

    check()


@PROPERTY_SETTINGS
@given(st.integers(1, 256), st.integers(1, 512), st.floats(0.02, 1.0), st.integers(0, 2**31 - 1))
def test_crd_nce_objective_is_finite_and_non_negative(batch, negatives, nce_temperature, seed):
    rng = np.random.default_rng(seed)
    # The head's scores: exp(cosine / tau) / Z, Z the mean score times the number of examples (as CRD sets it).
    num_examples = 50000
    exponentials = np.exp(rng.uniform(-1, 1, size=(batch, negatives + 1)) / nce_temperature)
    scores = (exponentials / (exponentials.mean() * num_examples)).astype("float32")
    value = to_numpy(nce_loss(ops.convert_to_tensor(scores), num_examples=num_examples))
    assert np.isfinite(value).all() and (value >= 0).all()


# Response losses that score each token of a sequence on its own (relational ones compare the rows
# of a batch; feature losses reduce a whole feature map per example): padding tokens weigh 0.
_PER_TOKEN = [cls for cls in _CLASSES if cls.per_sample and not issubclass(cls, FeatureLoss)]


@pytest.mark.parametrize("cls", _PER_TOKEN, ids=lambda cls: cls.__name__)
def test_sequences_of_padding_alone_give_zero_and_finite_gradients(cls):
    loss = _make(cls)
    rng = np.random.default_rng(0)
    teacher = (rng.normal(size=(2, 5, 7)) * 30).astype("float32")
    student = (rng.normal(size=(2, 5, 7)) * 30).astype("float32")
    labels = rng.integers(0, 7, size=(2, 5))
    padding = np.zeros((2, 5), "float32")

    def value(s):
        kwargs = {"labels": ops.convert_to_tensor(labels)} if loss.needs_labels else {}
        t = ops.convert_to_tensor(teacher)
        return loss(t, ops.convert_to_tensor(s), sample_weight=ops.convert_to_tensor(padding), **kwargs)

    got = float(to_numpy(value(student)))
    assert got == 0.0, f"{cls.__name__} on padding alone = {got}"
    grad = _gradient(value, student)
    assert np.isfinite(grad).all() and not grad.any(), f"{cls.__name__}: padding moved the student"
