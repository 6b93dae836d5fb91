"""The top-k form of a teacher's outputs: the k largest probabilities and their ids per position,
the distribution rebuilt from them in the step (the rest spread, or kept as one tail class),
and the error of keeping k. `TopKTeacherCache` and its on-disk form both use it."""

import numpy as np

from keras_kd.backend import ops
from keras_kd.data.keys import TOP_K_IDS_KEY, TOP_K_PROBABILITIES_KEY
from keras_kd.data.tokens import padding_mask

_FLOOR = 1e-8  # the smallest probability a rebuilt distribution holds, so that its log is finite


TAILS = ("spread", "bucket")
"""What a top-k cache does with the teacher's mass outside its k tokens (see the module's docstring)."""


def _scattered(ids, values, num_classes):
    """`(..., num_classes)` zeros with `values` (`(..., k)`) at `ids` on the last axis; any backend."""
    ids = ops.cast(ids, "int32")
    k = ids.shape[-1]
    positions = ops.shape(ids)[:-1]
    ids = ops.reshape(ids, (-1, k))
    rows = ops.shape(ids)[0]
    row_of_each = ops.reshape(ops.expand_dims(ops.arange(rows, dtype="int32"), 1) + ops.zeros_like(ids), (-1,))
    indices = ops.stack([row_of_each, ops.reshape(ids, (-1,))], axis=1)
    scattered = ops.scatter(indices, ops.reshape(values, (-1,)), (rows, num_classes))
    return ops.reshape(scattered, (*positions, num_classes))


def top_k_logits(probabilities, ids, num_classes):
    """Logits `log(q)` of the distribution `q` with `probabilities` at `ids` (last axis `k`) and the
    rest of the mass spread evenly over the other `num_classes - k` classes; any backend."""
    probabilities = ops.cast(probabilities, "float32")
    k = probabilities.shape[-1]
    rest = ops.maximum(1.0 - ops.sum(probabilities, axis=-1, keepdims=True), 0.0) / max(num_classes - k, 1)
    full = _scattered(ids, probabilities - rest, num_classes) + rest
    return ops.log(ops.maximum(full, _FLOOR))


def tail_bucket_logits(probabilities, ids, student_logits):
    """`(teacher, student)` log-probabilities over k + 1 classes: the teacher's top-k tokens, then
    one class holding the rest of each model's mass; any backend.

    Formula:
        teacher = log [p_t(i_1), ..., p_t(i_k), 1 - sum_j p_t(i_j)]
        student = log [p_s(i_1), ..., p_s(i_k), sum_{v not in i} p_s(v)],  p_s = softmax(student_logits)

    The student's rest is a log-sum-exp over the tokens outside the teacher's k (not
    `log(1 - sum)`, which cancels catastrophically where the k hold almost all the mass). A loss at
    temperature T softens both k + 1 distributions, the tail as one class.
    """
    probabilities = ops.cast(probabilities, "float32")
    teacher_rest = ops.maximum(1.0 - ops.sum(probabilities, axis=-1, keepdims=True), 0.0)
    teacher = ops.log(ops.maximum(ops.concatenate([probabilities, teacher_rest], axis=-1), _FLOOR))
    log_p = ops.log_softmax(ops.cast(student_logits, "float32"), axis=-1)
    ids = ops.cast(ids, "int32")
    kept = ops.take_along_axis(log_p, ids, axis=-1)
    in_top_k = _scattered(ids, ops.ones_like(probabilities), log_p.shape[-1]) > 0
    student_rest = ops.logsumexp(ops.where(in_top_k, -1e9, log_p), axis=-1, keepdims=True)
    return teacher, ops.concatenate([kept, student_rest], axis=-1)


def checked_tail(tail):
    """`tail`, or a ValueError naming the forms `TAILS`."""
    if tail not in TAILS:
        raise ValueError(f"`tail` must be one of {TAILS}; received {tail!r}.")
    return tail


class TruncationError:
    """Running means over real positions of the mass outside the top k and of KL(full || cached)."""

    def __init__(self):
        self.positions = 0.0
        self.dropped = 0.0
        self.kl = 0.0

    def add(self, p, ids, top_p, weight):
        num_classes, k = p.shape[-1], top_p.shape[-1]
        dropped = np.clip(1.0 - top_p.sum(-1), 0.0, None)
        # q equals p on the top k, dropped / (V - k) elsewhere: KL = sum over the rest of p log(p / q).
        rest = np.maximum(dropped / max(num_classes - k, 1), _FLOOR)[..., None]
        in_rest = p.copy()
        np.put_along_axis(in_rest, ids, 0.0, axis=-1)
        kl = (in_rest * (np.log(np.maximum(in_rest, 1e-300)) - np.log(rest))).sum(-1)
        self.positions += float(weight.sum())
        self.dropped += float((dropped * weight).sum())
        self.kl += float((kl * weight).sum())

    @property
    def means(self):
        count = max(self.positions, 1.0)
        return self.dropped / count, self.kl / count


def top_k_of(logits, top_k, inputs, error):
    """`{probabilities key: float16 (..., k), ids key: (..., k)}`: one batch's `top_k` tokens per
    position, sorted by probability, with `error` (a `TruncationError`) updated over real positions."""
    logits = np.asarray(logits, "float64")
    if not 1 <= top_k < logits.shape[-1]:
        raise ValueError(f"top_k={top_k} must be at least 1 and below the {logits.shape[-1]} classes.")
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    # The k largest in linear time (a vocabulary of 50k per position), then sorted among themselves.
    ids = np.argpartition(-p, top_k - 1, axis=-1)[..., :top_k]
    ids = np.take_along_axis(ids, np.argsort(-np.take_along_axis(p, ids, axis=-1), axis=-1), axis=-1)
    top_p = np.take_along_axis(p, ids, axis=-1)
    mask = padding_mask(inputs)
    weight = np.ones(p.shape[:-1]) if mask is None else np.asarray(mask, "float64").reshape(p.shape[:-1])
    error.add(p, ids, top_p, weight)
    return {TOP_K_PROBABILITIES_KEY: top_p.astype("float16"), TOP_K_IDS_KEY: ids}
