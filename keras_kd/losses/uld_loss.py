"""ULD: distillation across vocabularies, by the L1 distance of sorted probabilities.

Token-level KD compares the two models' probabilities token by token, so teacher and student must
share one vocabulary. Universal Logit Distillation compares each distribution's probabilities
sorted in descending order instead: the most likely token of the teacher against the most likely
of the student, the second against the second, and so on, whatever the tokens are. It needs no
shared vocabulary, only positions that line up (`keras_kd.data.tokens.align_positions`).
"""

from keras_kd.backend import ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss


def _sorted_descending(probabilities):
    return -ops.sort(-probabilities, axis=-1)


def _padded(probabilities, size):
    """Zeros appended on the last axis up to `size` entries."""
    missing = size - probabilities.shape[-1]
    if missing == 0:
        return probabilities
    return ops.pad(probabilities, [[0, 0]] * (len(probabilities.shape) - 1) + [[0, missing]])


def uld_loss(teacher_logits, student_logits, temperature=1.0):
    """ULD's distance per position: L1 between the two distributions sorted in descending order.

    Formula:
        p_t = sort_desc(softmax(t / T)), p_s = sort_desc(softmax(s / T)), the shorter padded with zeros
        loss = sum_i |p_t[i] - p_s[i]|

    The vocabularies (last axes) may differ. No T^2 factor, as in the paper: the distance is between
    probabilities (at most 2), not a KL.

    Args:
        teacher_logits: `(batch, ..., teacher vocabulary)`.
        student_logits: `(batch, ..., student vocabulary)`, the same leading shape.
        temperature: T > 0, applied to both.

    Returns:
        `(batch, ...)` unreduced values, one per position.

    References:
        Boizard, El Haddad, Hudelot and Colombo, "Towards Cross-Tokenizer Distillation: the
        Universal Logit Distillation Loss for LLMs", 2024.
    """
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    p_t = _sorted_descending(ops.softmax(teacher_logits / temperature, axis=-1))
    p_s = _sorted_descending(ops.softmax(student_logits / temperature, axis=-1))
    size = max(p_t.shape[-1], p_s.shape[-1])
    return ops.sum(ops.abs(_padded(p_t, size) - _padded(p_s, size)), axis=-1)


@register_loss("uld")
class ULDLoss(DistillationLoss):
    """ULD per token: the one registered loss that takes a teacher of another vocabulary.

    Example:
    >>> distiller = Distiller(student=student_lm, teacher=teacher_lm_of_another_tokenizer)
    >>> distiller.compile(optimizer="adam", distillation_loss_fn="uld", temperature=1.0)
    >>> distiller.fit({"student_inputs": student_x, "teacher_inputs": teacher_x}, y, sample_weight=w)
    """

    fn = staticmethod(uld_loss)
    across_vocabularies = True

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name="uld", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
