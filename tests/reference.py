"""Losses written from the papers' formulas with NumPy/SciPy in float64, independent of keras_kd."""

import numpy as np
from scipy.special import log_softmax, softmax


def _array(x, dtype=None):
    """A NumPy array from NumPy, TensorFlow, JAX or PyTorch values (a PyTorch tensor may need grad)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype)


def hinton_kd(teacher_logits, student_logits, temperature):
    """T^2 * KL(p_t || p_s) per sample (Hinton et al. 2015)."""
    t = _array(teacher_logits, np.float64) / temperature
    s = _array(student_logits, np.float64) / temperature
    log_pt, log_ps = log_softmax(t, axis=-1), log_softmax(s, axis=-1)
    return temperature**2 * np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=-1)


def crossentropy(labels, logits):
    """-log softmax(logits)[label] per sample."""
    log_p = log_softmax(_array(logits, np.float64), axis=-1)
    return -log_p[np.arange(len(labels)), _array(labels).reshape(-1)]


def kd_gradient(teacher_logits, student_logits, temperature):
    """Analytic d(mean_batch hinton_kd)/d student_logits = T (p_s - p_t) / batch."""
    batch = len(student_logits)
    p_s = softmax(_array(student_logits, np.float64) / temperature, axis=-1)
    p_t = softmax(_array(teacher_logits, np.float64) / temperature, axis=-1)
    return temperature * (p_s - p_t) / batch


def _softmax64(z):
    return softmax(_array(z, np.float64), axis=-1)


def dkd(teacher_logits, student_logits, labels, alpha, beta, temperature):
    """Zhao et al. 2022, eq. (7): T^2 (alpha KL(b_t||b_s) + beta KL(p~_t||p~_s)), per sample, by loops."""
    out = []
    for t, s, y in zip(teacher_logits, student_logits, labels):
        p_t, p_s = _softmax64(t / temperature), _softmax64(s / temperature)
        b_t = np.array([p_t[y], 1 - p_t[y]])
        b_s = np.array([p_s[y], 1 - p_s[y]])
        tckd = np.sum(b_t * np.log(b_t / b_s))
        others = [c for c in range(len(t)) if c != y]
        q_t = _softmax64(_array(t, np.float64)[others] / temperature)
        q_s = _softmax64(_array(s, np.float64)[others] / temperature)
        nckd = np.sum(q_t * np.log(q_t / q_s))
        out.append(temperature**2 * (alpha * tckd + beta * nckd))
    return np.array(out)


def _authors_pearson(a, b, eps=1e-8):
    """DIST_KD's `pearson_correlation` (Huang et al.'s code): cosine of the centred vectors, eps in the
    denominator only; a constant vector correlates 0."""
    a, b = a - a.mean(), b - b.mean()
    return np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b) + eps)


def dist(teacher_logits, student_logits, beta, gamma, temperature):
    """Huang et al. 2022: T^2 (beta (1 - mean row Pearson) + gamma (1 - mean column Pearson))."""
    y_t, y_s = _softmax64(teacher_logits / temperature), _softmax64(student_logits / temperature)
    inter = 1 - np.mean([_authors_pearson(a, b) for a, b in zip(y_s, y_t)])
    intra = 1 - np.mean([_authors_pearson(a, b) for a, b in zip(y_s.T, y_t.T)])
    return temperature**2 * (beta * inter + gamma * intra)


def soft_crossentropy(teacher_logits, student_logits, temperature):
    p_t = _softmax64(teacher_logits / temperature)
    return -(temperature**2) * np.sum(p_t * log_softmax(_array(student_logits, np.float64) / temperature, -1), -1)


def fitnets(teacher_features, student_features):
    n = len(teacher_features)
    student = _array(student_features, np.float64).reshape(n, -1)
    diff = student - _array(teacher_features, np.float64).reshape(n, -1)
    return np.mean(diff**2, axis=1)


def attention_transfer(teacher_features, student_features, p=2.0):
    """Zagoruyko and Komodakis 2017: normalised spatial maps of mean_c |A|^p, mean squared difference."""

    def attention(f):
        q = np.mean(np.abs(_array(f, np.float64)) ** p, axis=-1).reshape(len(f), -1)
        return q / np.linalg.norm(q, axis=1, keepdims=True)

    return np.mean((attention(student_features) - attention(teacher_features)) ** 2, axis=1)


def _huber(x):
    return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5).mean()


def rkd(teacher_features, student_features, distance_weight, angle_weight):
    """Park et al. 2019, eqs. (4)-(7), with explicit loops over pairs and triplets."""

    def flat(f):
        return _array(f, np.float64).reshape(len(f), -1)

    def distances(f):
        n = len(f)
        d = np.array([[np.linalg.norm(f[i] - f[j]) for j in range(n)] for i in range(n)])
        mu = d[~np.eye(n, dtype=bool)].mean() if n > 1 else 1.0
        return d / mu

    def angles(f):
        n = len(f)
        out = np.zeros((n, n, n))
        for a in range(n):
            for b in range(n):
                for c in range(n):
                    u, v = f[b] - f[a], f[c] - f[a]
                    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                    out[a, b, c] = 0.0 if nu == 0 or nv == 0 else u @ v / (nu * nv)
        return out

    t, s = flat(teacher_features), flat(student_features)
    return distance_weight * _huber(distances(s) - distances(t)) + angle_weight * _huber(angles(s) - angles(t))


def pkt(teacher_features, student_features, eps=1e-7):
    """Passalis and Tefas 2018: KL between cosine-kernel conditional distributions."""

    def conditional(f):
        f = _array(f, np.float64).reshape(len(f), -1)
        f = f / (np.linalg.norm(f, axis=1, keepdims=True) + eps)
        k = (f @ f.T + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    p_t, p_s = conditional(teacher_features), conditional(student_features)
    return np.mean(p_t * np.log((p_t + eps) / (p_s + eps)))


def nce(scores, num_examples, eps=1e-7):
    """Tian et al. 2020, eq. (10)-(12) as in the authors' ContrastLoss."""
    scores = _array(scores, np.float64)
    m = scores.shape[1] - 1
    pn = 1.0 / num_examples
    log_d1 = np.log(scores[:, 0] / (scores[:, 0] + m * pn + eps))
    log_d0 = np.log((m * pn) / (scores[:, 1:] + m * pn + eps))
    return -(log_d1.sum() + log_d0.sum()) / len(scores)


# Divergences for generative models, one value per position (any leading shape), from the papers' formulas.


def _probs(logits, temperature):
    return softmax(_array(logits, np.float64) / temperature, axis=-1)


def _kl_probs(p, q):
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def reverse_kl(teacher_logits, student_logits, temperature):
    """T^2 KL(p_s || p_t) (Gu et al. 2024, MiniLLM)."""
    p_t, p_s = _probs(teacher_logits, temperature), _probs(student_logits, temperature)
    return temperature**2 * _kl_probs(p_s, p_t)


def generalized_jsd(teacher_logits, student_logits, beta, temperature):
    """T^2 JSD(beta) of Agarwal et al. 2024 (GKD), eq. (1), with M = beta p_t + (1 - beta) p_s.

    The endpoints follow TRL's GKDTrainer: beta = 0 is KL(p_t || p_s), beta = 1 is KL(p_s || p_t).
    """
    p_t, p_s = _probs(teacher_logits, temperature), _probs(student_logits, temperature)
    if beta == 0:
        return temperature**2 * _kl_probs(p_t, p_s)
    if beta == 1:
        return temperature**2 * _kl_probs(p_s, p_t)
    m = beta * p_t + (1 - beta) * p_s
    return temperature**2 * (beta * _kl_probs(p_t, m) + (1 - beta) * _kl_probs(p_s, m))


def skew_kl(teacher_logits, student_logits, skew, temperature):
    """T^2 KL(p_t || skew p_t + (1 - skew) p_s) (Ko et al. 2024, DistiLLM, alpha-SKL)."""
    p_t, p_s = _probs(teacher_logits, temperature), _probs(student_logits, temperature)
    return temperature**2 * _kl_probs(p_t, skew * p_t + (1 - skew) * p_s)


def skew_reverse_kl(teacher_logits, student_logits, skew, temperature):
    """T^2 KL(p_s || skew p_s + (1 - skew) p_t) (Ko et al. 2024, DistiLLM, alpha-SRKL)."""
    p_t, p_s = _probs(teacher_logits, temperature), _probs(student_logits, temperature)
    return temperature**2 * _kl_probs(p_s, skew * p_s + (1 - skew) * p_t)


def real_token_mean(per_token, weights):
    """sum(value * weight) / (number of tokens whose weight is not 0), by loops over the tokens."""
    per_token, weights = _array(per_token, np.float64), _array(weights, np.float64)
    total, count = 0.0, 0
    for value, weight in zip(per_token.reshape(-1), np.broadcast_to(weights, per_token.shape).reshape(-1)):
        if weight != 0:
            total += value * weight
            count += 1
    return total / max(count, 1)


def standardize(logits):
    """Sun et al.'s `normalize`: (z - mean) / (1e-7 + std) per row, with the sample std (torch's default)."""
    z = _array(logits, np.float64)
    return (z - z.mean(-1, keepdims=True)) / (1e-7 + z.std(-1, ddof=1, keepdims=True))


def ls_kd(teacher_logits, student_logits, temperature):
    """KD on standardized logits (Sun et al., CVPR 2024), per sample."""
    return hinton_kd(standardize(teacher_logits), standardize(student_logits), temperature)


def mlkd(teacher_logits, student_logits, temperatures):
    """Jin et al., CVPR 2023 (their kd_loss, bc_loss and cc_loss, one view, no masks), summed over T."""
    total = 0.0
    for t in temperatures:
        p_t, p_s = _softmax64(teacher_logits / t), _softmax64(student_logits / t)
        batch, classes = p_t.shape
        instance = np.mean(hinton_kd(teacher_logits, student_logits, t))
        bc = np.sum((p_t @ p_t.T - p_s @ p_s.T) ** 2) / batch
        cc = np.sum((p_t.T @ p_t - p_s.T @ p_s) ** 2) / classes
        total += instance + bc + cc
    return total


def uld(teacher_logits, student_logits, temperature):
    """Boizard et al. 2024 (ULD): sum_i |sorted p_t - sorted p_s|, descending, the shorter padded with zeros."""
    p_t = -np.sort(-_probs(teacher_logits, temperature), axis=-1)
    p_s = -np.sort(-_probs(student_logits, temperature), axis=-1)
    size = max(p_t.shape[-1], p_s.shape[-1])
    pad = [(0, 0)] * (p_t.ndim - 1)
    p_t = np.pad(p_t, pad + [(0, size - p_t.shape[-1])])
    p_s = np.pad(p_s, pad + [(0, size - p_s.shape[-1])])
    return np.abs(p_t - p_s).sum(-1)
