"""Decoupled knowledge distillation (DKD): target-class and non-target-class parts weighed apart."""

from keras_kd.backend import ops, register_serializable
from keras_kd.losses.base import DistillationLoss, as_float32


def class_mask(labels, logits):
    """One-hot mask `(batch, classes)` of the target class; labels sparse or one-hot."""
    classes = logits.shape[-1]
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == len(logits.shape) and labels.shape[-1] == classes and classes > 1:
        labels = ops.argmax(labels, axis=-1)
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
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


def dkd_loss(teacher_logits, student_logits, labels, alpha=1.0, beta=8.0, temperature=4.0):
    """DKD = alpha * TCKD + beta * NCKD, each scaled by T^2, one value a sample.

    Formula:
        p = softmax(z / T);  b = (p[y], 1 - p[y])
        TCKD = KL(b_teacher || b_student)
        NCKD = KL(softmax(z_t / T without y) || softmax(z_s / T without y))

    The target-class probability comes from log-softmax (stable for extreme logits); the
    non-target distribution is a softmax with the target logit removed.

    Args:
        teacher_logits, student_logits: `(batch, classes)`.
        labels: `(batch,)` class indices or `(batch, classes)` one-hot.
        alpha: weight of the target-class part (TCKD).
        beta: weight of the non-target part (NCKD).
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
    tckd = ops.exp(log_t_target) * (log_t_target - log_s_target) + ops.exp(log_t_other) * (
        log_t_other - log_s_other
    )
    log_q_t = ops.log_softmax(_without_target(t, mask), axis=-1)
    log_q_s = ops.log_softmax(_without_target(s, mask), axis=-1)
    nckd = ops.sum(ops.exp(log_q_t) * (log_q_t - log_q_s) * (1.0 - mask), axis=-1)
    return (alpha * tckd + beta * nckd) * temperature**2


@register_serializable("DKDLoss")
class DKDLoss(DistillationLoss):
    """Decoupled KD as a loss; needs the labels, which the Distiller passes.

    Args:
        alpha: weight of the target-class part; 1.0 in the paper.
        beta: weight of the non-target part; 8.0 on CIFAR-100, 0.5 on ImageNet in the paper.
        temperature: T, or `None` for the Distiller's (the paper uses 4 on CIFAR-100).
    """

    fn = staticmethod(dkd_loss)
    needs_labels = True

    def __init__(self, alpha=1.0, beta=8.0, temperature=None, reduction="sum_over_batch_size",
                 name="dkd_loss", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def fn_kwargs(self, temperature):
        return {"alpha": self.alpha, "beta": self.beta, "temperature": temperature}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
