"""Two simple response-based losses: soft-target cross-entropy and MSE between logits."""

from keras_kd.backend import ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss


def soft_target_crossentropy(teacher_logits, student_logits, temperature=1.0):
    """T^2 * H(p_t, p_s) = -T^2 * sum_c p_t[c] log p_s[c], one value a sample.

    Equal to the Hinton loss plus T^2 times the teacher's entropy, so its gradient with
    respect to the student is the same; its value is the cross-entropy users often log.

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    p_t = ops.softmax(teacher_logits / temperature, axis=-1)
    log_p_s = ops.log_softmax(student_logits / temperature, axis=-1)
    return -ops.sum(p_t * log_p_s, axis=-1) * temperature**2


def logits_mse(teacher_logits, student_logits):
    """Mean over classes of (student_logit - teacher_logit)^2, one value a sample.

    References:
        Ba and Caruana, "Do Deep Nets Really Need to be Deep?", NeurIPS 2014.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    return ops.mean(ops.square(student_logits - teacher_logits), axis=-1)


@register_loss("soft_target_crossentropy", "soft_ce")
class SoftTargetCrossentropy(DistillationLoss):
    """Cross-entropy between the softened teacher and student distributions, times T^2."""

    fn = staticmethod(soft_target_crossentropy)

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name="soft_target_crossentropy", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)


@register_loss("logits_mse")
class LogitsMSE(DistillationLoss):
    """Mean squared error between raw logits (no temperature)."""

    fn = staticmethod(logits_mse)
    uses_temperature = False

    def __init__(self, reduction="sum_over_batch_size", name="logits_mse", **kwargs):
        kwargs.pop("temperature", None)
        super().__init__(temperature=None, reduction=reduction, name=name, **kwargs)
