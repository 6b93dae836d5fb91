"""Probabilistic knowledge transfer: match the distribution of cosine similarities in the batch."""

from keras_kd.backend import ops
from keras_kd.losses.base import as_float32, register_loss
from keras_kd.losses.feature_base import FeatureLoss, flatten_features

_EPS = 1e-7


def _conditional_probabilities(features):
    norm = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
    unit = features / (norm + _EPS)
    similarity = (ops.matmul(unit, ops.transpose(unit)) + 1.0) / 2.0
    return similarity / ops.sum(similarity, axis=-1, keepdims=True)


def pkt_loss(teacher_features, student_features):
    """Mean KL between the teacher's and student's conditional similarity distributions.

    Formula:
        K(a, b) = (cos(a, b) + 1) / 2;  p_{j|i} = K(f_i, f_j) / sum_j K(f_i, f_j)
        loss = mean_{i, j} p^t_{j|i} log((p^t_{j|i} + eps) / (p^s_{j|i} + eps))

    Returns:
        A scalar for the batch (the authors' code weighs it by 30000 on CIFAR).

    References:
        Passalis and Tefas, "Learning Deep Representations with Probabilistic Knowledge
        Transfer", ECCV 2018.
    """
    teacher, student = as_float32(teacher_features, student_features)
    p_t = ops.stop_gradient(_conditional_probabilities(flatten_features(teacher)))
    p_s = _conditional_probabilities(flatten_features(student))
    return ops.mean(p_t * ops.log((p_t + _EPS) / (p_s + _EPS)))


@register_loss("pkt")
class PKTLoss(FeatureLoss):
    """PKT on two embeddings of any sizes (a batch-level value)."""

    fn = staticmethod(pkt_loss)
    per_sample = False
    needs_same_shape = False

    def __init__(self, reduction="sum_over_batch_size", name="pkt_loss", **kwargs):
        super().__init__(reduction=reduction, name=name, **kwargs)
