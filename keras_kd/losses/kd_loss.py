"""Hinton et al.'s knowledge-distillation loss, computed stably."""

from keras_kd.backend import ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss


def kd_loss(teacher_logits, student_logits, temperature=1.0):
    """Hinton's loss: T^2 * KL(softmax(t / T) || softmax(s / T)), one value a sample.

    Formula:
        p_t = softmax(teacher_logits / T), log p_s = log_softmax(student_logits / T)
        loss = T^2 * sum_c p_t[c] * (log p_t[c] - log p_s[c])

    Both log-probabilities come from `log_softmax`, so the value stays finite for logits
    of magnitude 1e4 and temperatures from 0.05 to 100; the T^2 factor keeps the
    gradient's scale independent of T: d loss / d s = T * (p_s - p_t).

    Args:
        teacher_logits: `(batch, classes)` teacher logits, or `(batch, time, classes)` for
            sequences (the temperature then softens each token's distribution).
        student_logits: the student's, of the same shape.
        temperature: the softening temperature T > 0.

    Returns:
        `(batch,)` unreduced losses (`(batch, time)` for sequences).

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    teacher_log_probs = ops.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_probs = ops.log_softmax(student_logits / temperature, axis=-1)
    teacher_probs = ops.exp(teacher_log_probs)
    kl = ops.sum(teacher_probs * (teacher_log_probs - student_log_probs), axis=-1)
    return kl * (temperature**2)


@register_loss("kd", "hinton", "kd_loss", "kl_divergence", "kld", "kl", "kullback_leibler_divergence", "KLDivergence")
class KDLoss(DistillationLoss):
    """Hinton's distillation loss as a Keras loss: `y_true` teacher logits, `y_pred` student logits.

    `keras.losses.KLDivergence()` and `"kl_divergence"` given to the Distiller resolve to
    this loss, so they mean what the Keras distillation example means by them.

    Example:
    >>> loss = KDLoss(temperature=4.0)
    >>> value = loss(teacher_logits, student_logits)
    """

    fn = staticmethod(kd_loss)

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name="kd_loss", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)


@register_loss("ls_kd", "logit_standardization")
class LSKDLoss(KDLoss):
    """Hinton's loss on z-scored logits: `kd_loss(standardize(t), standardize(s))` (`standardize_logits`).

    Each model's logits are centred and divided by their own standard deviation before the
    softmax at T, so the student learns the teacher's logit relations, not their scale. The
    paper's defaults: base temperature 2, and the loss weighed 9 against 0.1 for the labels
    (`alpha` 0.1 / 9.1 here); `examples/configs/ls_kd.yaml`.

    References:
        Sun, Ren, Li, Wang and Cao, "Logit Standardization in Knowledge Distillation", CVPR 2024.
    """

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name="ls_kd_loss", **kwargs):
        kwargs.setdefault("logit_standardization", True)
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
