"""DIST: distillation from a stronger teacher by Pearson correlation of class relations."""

from keras_kd.backend import ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss

_EPS = 1e-8


def _pearson(a, b, axis):
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    numerator = ops.sum(a * b, axis=axis)
    denominator = ops.sqrt(ops.sum(a * a, axis=axis)) * ops.sqrt(ops.sum(b * b, axis=axis)) + _EPS
    return numerator / denominator


def dist_loss(teacher_logits, student_logits, beta=1.0, gamma=1.0, temperature=1.0):
    """DIST = T^2 * (beta * inter-class + gamma * intra-class relation loss), for the batch.

    Formula:
        Y = softmax(Z / T)  (batch x classes)
        inter = 1 - mean_i pearson(Y_s[i, :], Y_t[i, :])   (each sample's class ranking)
        intra = 1 - mean_c pearson(Y_s[:, c], Y_t[:, c])   (each class across the batch)

    Returns:
        A scalar: the intra-class term relates samples to each other.

    References:
        Huang, You, Wang, Qian and Xu, "Knowledge Distillation from A Stronger Teacher",
        NeurIPS 2022.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    y_t = ops.softmax(teacher_logits / temperature, axis=-1)
    y_s = ops.softmax(student_logits / temperature, axis=-1)
    inter = 1.0 - ops.mean(_pearson(y_s, y_t, axis=1))
    intra = 1.0 - ops.mean(_pearson(y_s, y_t, axis=0))
    return temperature**2 * (beta * inter + gamma * intra)


@register_loss("dist")
class DISTLoss(DistillationLoss):
    """DIST as a loss (a batch-level value: no per-sample weights).

    Args:
        beta: weight of the inter-class relation (1.0 in the paper).
        gamma: weight of the intra-class relation (1.0 in the paper).
        temperature: T, or `None` for the Distiller's (the paper uses 1 on ImageNet, 4 on CIFAR-100).
    """

    fn = staticmethod(dist_loss)
    per_sample = False
    hyperparameters = ("beta", "gamma")

    def __init__(self, beta=1.0, gamma=1.0, temperature=None, reduction="sum_over_batch_size",
                 name="dist_loss", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
        self.beta = float(beta)
        self.gamma = float(gamma)

