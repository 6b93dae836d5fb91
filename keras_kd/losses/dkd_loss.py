"""Decoupled knowledge distillation (DKD): target-class and non-target-class parts weighed apart."""

import warnings

from keras_kd.backend import ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss


def class_mask(labels, logits):
    """One-hot mask `(batch, ..., classes)` of the target class; labels sparse or one-hot."""
    classes = logits.shape[-1]
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == len(logits.shape) and labels.shape[-1] == classes and classes > 1:
        labels = ops.argmax(labels, axis=-1)
    # One class index per row, or per token for sequence logits `(batch, time, classes)`.
    labels = ops.reshape(ops.cast(labels, "int32"), ops.shape(logits)[:-1] if len(logits.shape) > 2 else (-1,))
    return ops.one_hot(labels, classes, dtype="float32")


def _without_target(scaled_logits, mask):
    # Push the target logit far below the others so that a softmax ignores it; the shift
    # grows with the logits, so it works for logits of any magnitude.
    shift = ops.stop_gradient(2.0 * ops.max(ops.abs(scaled_logits)) + 1e3)
    return scaled_logits - shift * mask


def _target_log_probs(scaled_logits, mask):
    """log p[y] and log(1 - p[y]), both in log space."""
    log_normalizer = ops.logsumexp(scaled_logits, axis=-1)
    log_p_target = ops.sum(scaled_logits * mask, axis=-1) - log_normalizer
    log_p_other = ops.logsumexp(_without_target(scaled_logits, mask), axis=-1) - log_normalizer
    return log_p_target, log_p_other


def dkd_loss(teacher_logits, student_logits, labels, target_weight=1.0, non_target_weight=8.0, temperature=4.0):
    """DKD = target_weight * TCKD + non_target_weight * NCKD, each scaled by T^2, one value a sample.

    Formula:
        p = softmax(z / T);  b = (p[y], 1 - p[y])
        TCKD = KL(b_teacher || b_student)
        NCKD = KL(softmax(z_t / T without y) || softmax(z_s / T without y))

    The target-class probability comes from log-softmax (stable for extreme logits); the
    non-target distribution is a softmax with the target logit removed.

    Args:
        teacher_logits, student_logits: `(batch, classes)`, or `(batch, time, classes)` for
            sequences (one value per token).
        labels: `(batch,)` class indices or `(batch, classes)` one-hot (`(batch, time)` for sequences).
        target_weight: weight of the target-class part (TCKD; the paper's alpha).
        non_target_weight: weight of the non-target part (NCKD; the paper's beta).
        temperature: T > 0.

    Returns:
        `(batch,)` unreduced losses.

    References:
        Zhao, Cui, Song, Qiu and Liang, "Decoupled Knowledge Distillation", CVPR 2022.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    mask = class_mask(labels, student_logits)
    t, s = teacher_logits / temperature, student_logits / temperature
    log_t_target, log_t_other = _target_log_probs(t, mask)
    log_s_target, log_s_other = _target_log_probs(s, mask)
    tckd = ops.exp(log_t_target) * (log_t_target - log_s_target) + ops.exp(log_t_other) * (log_t_other - log_s_other)
    log_q_t = ops.log_softmax(_without_target(t, mask), axis=-1)
    log_q_s = ops.log_softmax(_without_target(s, mask), axis=-1)
    nckd = ops.sum(ops.exp(log_q_t) * (log_q_t - log_q_s) * (1.0 - mask), axis=-1)
    return (target_weight * tckd + non_target_weight * nckd) * temperature**2


@register_loss("dkd")
class DKDLoss(DistillationLoss):
    """Decoupled KD as a loss; needs the labels, which the Distiller passes.

    In keras-kd `alpha` is always the Distiller's label-loss weight, so the paper's alpha and
    beta are called `target_weight` and `non_target_weight` here; `alpha=` and `beta=` still
    work for one release, with a DeprecationWarning.

    Args:
        target_weight: weight of the target-class part; 1.0 in the paper (its alpha).
        non_target_weight: weight of the non-target part (the paper's beta); 8.0 on CIFAR-100,
            0.5 on ImageNet in the paper.
        temperature: T, or `None` for the Distiller's (the paper uses 4 on CIFAR-100).
    """

    fn = staticmethod(dkd_loss)
    needs_labels = True
    hyperparameters = ("target_weight", "non_target_weight")

    def __init__(
        self,
        target_weight=1.0,
        non_target_weight=8.0,
        temperature=None,
        reduction="sum_over_batch_size",
        name="dkd_loss",
        alpha=None,
        beta=None,
        **kwargs,
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
        if alpha is not None or beta is not None:
            warnings.warn(
                "DKDLoss(alpha=, beta=) is deprecated (in keras-kd, alpha is the label-loss weight): "
                "use target_weight= and non_target_weight=.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.target_weight = float(target_weight if alpha is None else alpha)
        self.non_target_weight = float(non_target_weight if beta is None else beta)
