"""Losses written from the papers' formulas with NumPy/SciPy in float64, independent of keras_kd."""

import numpy as np
from scipy.special import log_softmax, softmax


def hinton_kd(teacher_logits, student_logits, temperature):
    """T^2 * KL(p_t || p_s) per sample (Hinton et al. 2015)."""
    t = np.asarray(teacher_logits, np.float64) / temperature
    s = np.asarray(student_logits, np.float64) / temperature
    log_pt, log_ps = log_softmax(t, axis=-1), log_softmax(s, axis=-1)
    return temperature**2 * np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=-1)


def crossentropy(labels, logits):
    """-log softmax(logits)[label] per sample."""
    log_p = log_softmax(np.asarray(logits, np.float64), axis=-1)
    return -log_p[np.arange(len(labels)), np.asarray(labels).reshape(-1)]


def kd_gradient(teacher_logits, student_logits, temperature):
    """Analytic d(mean_batch hinton_kd)/d student_logits = T (p_s - p_t) / batch."""
    batch = len(student_logits)
    p_s = softmax(np.asarray(student_logits, np.float64) / temperature, axis=-1)
    p_t = softmax(np.asarray(teacher_logits, np.float64) / temperature, axis=-1)
    return temperature * (p_s - p_t) / batch
