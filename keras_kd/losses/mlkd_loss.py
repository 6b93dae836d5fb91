"""Multi-level logit distillation: the teacher's outputs matched per example, across the batch and
across the classes, at several temperatures."""

from keras_kd.backend import ops
from keras_kd.checks import validate_temperature
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss

MLKD_TEMPERATURES = (2.0, 3.0, 4.0, 5.0, 6.0)
"""The authors' temperatures: their config's 4 and the fixed 2, 3, 5 and 6 of their code."""


def mlkd_loss(teacher_logits, student_logits, temperatures=MLKD_TEMPERATURES):
    """sum over T of the instance, batch and class alignments, one value for the batch.

    Formula (for each T; P = softmax(logits / T), B examples, C classes):
        instance = T^2 * mean_i KL(P_t[i] || P_s[i])
        batch    = sum((P_t P_t^T - P_s P_s^T)^2) / B     (B x B: how examples resemble each other)
        class    = sum((P_t^T P_t - P_s^T P_s)^2) / C     (C x C: how classes co-occur)

    The authors train on a weak and a strong augmented view and mask the weak view's terms by the
    teacher's confidence; with one view (any augmentation is the input pipeline's here) the loss
    is their strong view's. Sequence logits `(batch, time, classes)` count each position as a row.

    References:
        Jin, Wang and Lin, "Multi-Level Logit Distillation", CVPR 2023.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    classes = student_logits.shape[-1]
    teacher_logits = ops.reshape(teacher_logits, (-1, classes))
    student_logits = ops.reshape(student_logits, (-1, classes))
    rows = ops.cast(ops.shape(student_logits)[0], "float32")
    total = ops.zeros((), dtype="float32")
    for temperature in temperatures:
        log_p_t = ops.log_softmax(teacher_logits / temperature, axis=-1)
        log_p_s = ops.log_softmax(student_logits / temperature, axis=-1)
        p_t, p_s = ops.exp(log_p_t), ops.exp(log_p_s)
        instance = temperature**2 * ops.mean(ops.sum(p_t * (log_p_t - log_p_s), axis=-1))
        batch = ops.sum(ops.square(ops.matmul(p_t, ops.transpose(p_t)) - ops.matmul(p_s, ops.transpose(p_s)))) / rows
        by_class = ops.matmul(ops.transpose(p_t), p_t) - ops.matmul(ops.transpose(p_s), p_s)
        total = total + instance + batch + ops.sum(ops.square(by_class)) / classes
    return total


@register_loss("mlkd")
class MLKDLoss(DistillationLoss):
    """MLKD as a loss: a batch-level value (its batch and class terms relate examples to each other).

    Args:
        temperatures: the temperatures it sums over (the Distiller's temperature is not used).
    """

    fn = staticmethod(mlkd_loss)
    per_sample = False
    uses_temperature = False
    hyperparameters = ("temperatures",)

    def __init__(self, temperatures=MLKD_TEMPERATURES, reduction="sum_over_batch_size", name="mlkd_loss", **kwargs):
        kwargs.pop("temperature", None)
        self.temperatures = [float(t) for t in temperatures]
        if not self.temperatures:
            raise ValueError("`temperatures` must hold at least one temperature.")
        for temperature in self.temperatures:
            validate_temperature(temperature, "temperatures")
        super().__init__(temperature=None, reduction=reduction, name=name, **kwargs)
