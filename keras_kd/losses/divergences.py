"""Divergences for generative models: forward and reverse KL, generalized JSD, skew KL.

Language models emit one distribution per token; each divergence here compares the
teacher's and the student's distributions position by position, softened by the
temperature T (per token), scaled by T^2 as the Hinton loss is, and returns one value per
position: `(batch, time)` for logits `(batch, time, vocabulary)` (`(batch,)` for
`(batch, classes)`). The Distiller then averages over the real tokens (`keras_kd.data.tokens`).

Which divergence: forward KL (teacher || student) makes the student cover every mode of
the teacher (mean-seeking); reverse KL (student || teacher, MiniLLM) makes it commit to
the teacher's main modes (mode-seeking), which suits a small student generating text; the
generalized JSD interpolates between the two with `beta` (GKD); skew KL (DistiLLM) mixes a
little of the other distribution in, which keeps the gradient bounded where the student
puts almost no mass.

All are computed from `log_softmax`, in float32, in log space.
"""

import math

from keras_kd.backend import ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss
from keras_kd.losses.kd_loss import kd_loss


def _log_probs(teacher_logits, student_logits, temperature):
    teacher_logits, student_logits = as_float32(teacher_logits, student_logits)
    return (
        ops.log_softmax(teacher_logits / temperature, axis=-1),
        ops.log_softmax(student_logits / temperature, axis=-1),
    )


def _kl(log_p, log_q):
    """KL(p || q) over the last axis, from log-probabilities."""
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


def _log_mixture(log_p, log_q, weight):
    """log(weight * p + (1 - weight) * q), for 0 < weight < 1, in log space."""
    return ops.logsumexp(ops.stack([log_p + math.log(weight), log_q + math.log1p(-weight)]), axis=0)


def _check_fraction(value, argument, low_open=False, high_open=False):
    value = float(value)
    if (value < 0 or value > 1) or (low_open and value == 0) or (high_open and value == 1):
        bounds = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"`{argument}` must lie in {bounds}; received {value!r}.")
    return value


def forward_kl(teacher_logits, student_logits, temperature=1.0):
    """T^2 * KL(p_t || p_s) per position: the student covers the teacher's distribution.

    Formula:
        p_t = softmax(t / T), p_s = softmax(s / T)
        loss = T^2 * sum_v p_t[v] (log p_t[v] - log p_s[v])

    The same value as `kd_loss` (Hinton's loss), under the name sequence-KD papers use.

    Args:
        teacher_logits: `(batch, ..., vocabulary)` teacher logits.
        student_logits: the student's, of the same shape.
        temperature: T > 0, applied to each token's distribution.

    Returns:
        `(batch, ...)` unreduced values, one per position.

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015;
        Kim and Rush, "Sequence-Level Knowledge Distillation", EMNLP 2016 (word-level KD).
    """
    return kd_loss(teacher_logits, student_logits, temperature=temperature)


def reverse_kl(teacher_logits, student_logits, temperature=1.0):
    """T^2 * KL(p_s || p_t) per position: the student seeks the teacher's main modes.

    Formula:
        loss = T^2 * sum_v p_s[v] (log p_s[v] - log p_t[v])

    Returns:
        `(batch, ...)` unreduced values, one per position.

    References:
        Gu, Dong, Wei and Huang, "MiniLLM: Knowledge Distillation of Large Language
        Models", ICLR 2024.
    """
    log_t, log_s = _log_probs(teacher_logits, student_logits, temperature)
    return _kl(log_s, log_t) * temperature**2


def generalized_jsd(teacher_logits, student_logits, beta=0.5, temperature=1.0):
    """The generalized Jensen-Shannon divergence of GKD, times T^2, per position.

    Formula:
        m = beta * p_t + (1 - beta) * p_s
        JSD(beta) = beta * KL(p_t || m) + (1 - beta) * KL(p_s || m)     (0 < beta < 1)
        beta = 0: KL(p_t || p_s) (forward KL); beta = 1: KL(p_s || p_t) (reverse KL)

    This is TRL's `GKDTrainer.generalized_jsd_loss` convention (its endpoints included);
    `beta = 0.5` is the symmetric Jensen-Shannon divergence, bounded by log 2.

    Args:
        beta: the interpolation, in [0, 1].

    Returns:
        `(batch, ...)` unreduced values, one per position.

    References:
        Agarwal, Vieillard, Zhou, Stanczyk, Ramos, Geist and Bachem, "On-Policy Distillation
        of Language Models: Learning from Self-Generated Mistakes" (GKD), ICLR 2024, eq. (1).
    """
    log_t, log_s = _log_probs(teacher_logits, student_logits, temperature)
    if beta == 0:
        value = _kl(log_t, log_s)
    elif beta == 1:
        value = _kl(log_s, log_t)
    else:
        log_m = _log_mixture(log_t, log_s, beta)
        value = beta * _kl(log_t, log_m) + (1.0 - beta) * _kl(log_s, log_m)
    return value * temperature**2


def skew_kl(teacher_logits, student_logits, skew=0.1, temperature=1.0):
    """DistiLLM's skew KL, times T^2, per position: KL of the teacher from a skewed mixture.

    Formula:
        loss = T^2 * KL(p_t || skew * p_t + (1 - skew) * p_s)      (skew = 0: forward KL)

    Args:
        skew: the teacher's share of the mixture, in [0, 1); 0.1 in the paper.

    Returns:
        `(batch, ...)` unreduced values, one per position.

    References:
        Ko, Kim, Chen and Yun, "DistiLLM: Towards Streamlined Distillation for Large
        Language Models", ICML 2024 (alpha-SKL).
    """
    log_t, log_s = _log_probs(teacher_logits, student_logits, temperature)
    log_m = log_s if skew == 0 else _log_mixture(log_t, log_s, skew)
    return _kl(log_t, log_m) * temperature**2


def skew_reverse_kl(teacher_logits, student_logits, skew=0.1, temperature=1.0):
    """DistiLLM's skew reverse KL, times T^2, per position.

    Formula:
        loss = T^2 * KL(p_s || skew * p_s + (1 - skew) * p_t)      (skew = 0: reverse KL)

    Args:
        skew: the student's share of the mixture, in [0, 1); 0.1 in the paper.

    References:
        Ko, Kim, Chen and Yun, "DistiLLM: Towards Streamlined Distillation for Large
        Language Models", ICML 2024 (alpha-SRKL).
    """
    log_t, log_s = _log_probs(teacher_logits, student_logits, temperature)
    log_m = log_t if skew == 0 else _log_mixture(log_s, log_t, skew)
    return _kl(log_s, log_m) * temperature**2


@register_loss("forward_kl", "fkl")
class ForwardKLLoss(DistillationLoss):
    """Forward KL(teacher || student) per token, times T^2 (the Hinton loss on each position).

    Example:
    >>> distiller.compile(optimizer="adam", distillation_loss_fn="forward_kl", temperature=1.0)
    """

    fn = staticmethod(forward_kl)

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name="forward_kl", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)


@register_loss("reverse_kl", "rkl")
class ReverseKLLoss(DistillationLoss):
    """Reverse KL(student || teacher) per token, times T^2 (MiniLLM's divergence).

    Example:
    >>> distiller.compile(optimizer="adam", distillation_loss_fn="reverse_kl", temperature=1.0)
    """

    fn = staticmethod(reverse_kl)

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name="reverse_kl", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)


@register_loss("generalized_jsd", "gjsd", "jsd", "gkd")
class GeneralizedJSDLoss(DistillationLoss):
    """GKD's generalized Jensen-Shannon divergence per token, times T^2.

    Args:
        beta: 0 gives forward KL, 1 reverse KL, 0.5 (default) the symmetric JSD.
        temperature: T, or `None` for the Distiller's.

    Example:
    >>> distiller.compile(optimizer="adam", distillation_loss_fn=GeneralizedJSDLoss(beta=0.5))
    """

    fn = staticmethod(generalized_jsd)
    hyperparameters = ("beta",)

    def __init__(self, beta=0.5, temperature=None, reduction="sum_over_batch_size", name="generalized_jsd", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
        self.beta = _check_fraction(beta, "beta")


@register_loss("skew_kl", "skl")
class SkewKLLoss(DistillationLoss):
    """DistiLLM's skew KL(teacher || skew * teacher + (1 - skew) * student) per token, times T^2.

    Args:
        skew: in [0, 1); 0.1 (default) as in the paper.
    """

    fn = staticmethod(skew_kl)
    hyperparameters = ("skew",)

    def __init__(self, skew=0.1, temperature=None, reduction="sum_over_batch_size", name="skew_kl", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
        self.skew = _check_fraction(skew, "skew", high_open=True)


@register_loss("skew_reverse_kl", "srkl")
class SkewReverseKLLoss(DistillationLoss):
    """DistiLLM's skew reverse KL(student || skew * student + (1 - skew) * teacher) per token, times T^2.

    Args:
        skew: in [0, 1); 0.1 (default) as in the paper.
    """

    fn = staticmethod(skew_reverse_kl)
    hyperparameters = ("skew",)

    def __init__(self, skew=0.1, temperature=None, reduction="sum_over_batch_size", name="skew_reverse_kl", **kwargs):
        super().__init__(temperature=temperature, reduction=reduction, name=name, **kwargs)
        self.skew = _check_fraction(skew, "skew", high_open=True)
