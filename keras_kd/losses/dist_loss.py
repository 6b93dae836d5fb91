"""DIST: distillation from a stronger teacher by Pearson correlation of class relations."""

from keras_kd.backend import get_keras_mask, ops
from keras_kd.data.tokens import position_weight
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss

_EPS = 1e-8


def _pearson(a, b, axis):
    """The authors' `pearson_correlation`: the cosine of the centred vectors, eps in the denominator
    only, so a constant row or column (a batch of one, a saturated softmax) correlates 0."""
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    numerator = ops.sum(a * b, axis=axis)
    denominator = _sqrt(ops.sum(a * a, axis=axis)) * _sqrt(ops.sum(b * b, axis=axis)) + _EPS
    return numerator / denominator


def _sqrt(x):
    # A saturated softmax (low T) gives constant rows or columns: sqrt'(0) is inf, and the gradient NaN.
    return ops.sqrt(ops.maximum(x, 1e-30))


def _weighted_pearson_of_columns(a, b, weights):
    """Pearson of each column of `a` and `b` over rows weighted by `weights` `(rows, 1)`.

    With weights of 0 and 1 this is `_pearson(..., axis=0)` over the rows of weight 1.
    """
    total = ops.maximum(ops.sum(weights), _EPS)
    a = a - ops.sum(weights * a, axis=0, keepdims=True) / total
    b = b - ops.sum(weights * b, axis=0, keepdims=True) / total
    numerator = ops.sum(weights * a * b, axis=0)
    denominator = _sqrt(ops.sum(weights * a * a, axis=0)) * _sqrt(ops.sum(weights * b * b, axis=0)) + _EPS
    return numerator / denominator


def dist_loss(teacher_logits, student_logits, beta=1.0, gamma=1.0, temperature=1.0, weights=None):
    """DIST = T^2 * (beta * inter-class + gamma * intra-class relation loss), for the batch.

    Formula:
        Y = softmax(Z / T)  (batch x classes)
        inter = 1 - mean_i pearson(Y_s[i, :], Y_t[i, :])   (each sample's class ranking)
        intra = 1 - mean_c pearson(Y_s[:, c], Y_t[:, c])   (each class across the batch)
        pearson(a, b) = <a - mean a, b - mean b> / (|a - mean a| |b - mean b| + 1e-8)   (the authors' code)

    Sequence logits `(batch, time, classes)` take the per-position form: every position is
    a row. `weights` (`(batch, time)`, 0 on padding) then drop padding positions from both
    relations (weighted means and Pearson correlations over the rows).

    Returns:
        A scalar: the intra-class term relates samples to each other.

    References:
        Huang, You, Wang, Qian and Xu, "Knowledge Distillation from A Stronger Teacher",
        NeurIPS 2022.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    rank, classes = len(student_logits.shape), student_logits.shape[-1]
    if weights is not None:  # one weight per row (position), flattened as the rows are
        weights = position_weight(weights, rank - 1) * ops.ones_like(student_logits[..., 0])
        weights = ops.reshape(weights, (-1, 1))
    if rank > 2:  # sequences: each position is a row
        teacher_logits = ops.reshape(teacher_logits, (-1, classes))
        student_logits = ops.reshape(student_logits, (-1, classes))
    y_t = ops.softmax(teacher_logits / temperature, axis=-1)
    y_s = ops.softmax(student_logits / temperature, axis=-1)
    if weights is None:
        inter = 1.0 - ops.mean(_pearson(y_s, y_t, axis=1))
        intra = 1.0 - ops.mean(_pearson(y_s, y_t, axis=0))
    else:
        row_weights = weights[:, 0]
        inter = 1.0 - ops.sum(row_weights * _pearson(y_s, y_t, axis=1)) / ops.maximum(ops.sum(row_weights), _EPS)
        intra = 1.0 - ops.mean(_weighted_pearson_of_columns(y_s, y_t, weights))
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

    def __init__(
        self, beta=1.0, gamma=1.0, temperature=None, reduction="sum_over_batch_size", name="dist_loss", **kwargs
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def __call__(self, y_true, y_pred, sample_weight=None, labels=None, temperature=None):
        """Per-sample logits as DIST defines it; sequence logits in the per-position form, padding left out."""
        if len(getattr(y_pred, "shape", ())) <= 2:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight, labels=labels, temperature=temperature)
        if self.temperature is not None or temperature is None:
            temperature = self.temperature or 1.0
        if sample_weight is None:
            sample_weight = get_keras_mask(y_pred)
        return dist_loss(y_true, y_pred, weights=sample_weight, **self.fn_kwargs(temperature))
