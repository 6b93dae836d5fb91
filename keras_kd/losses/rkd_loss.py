"""Relational knowledge distillation: match the distances and angles between samples."""

from keras_kd.backend import ops
from keras_kd.losses.base import as_float32, register_loss
from keras_kd.losses.feature_base import FeatureLoss, flatten_features

_EPS = 1e-12


def _smooth_l1(difference):
    absolute = ops.abs(difference)
    return ops.mean(ops.where(absolute < 1.0, 0.5 * ops.square(difference), absolute - 0.5))


def pairwise_distances(embeddings):
    """Euclidean distances `(batch, batch)` with a zero diagonal."""
    squared = ops.sum(ops.square(embeddings), axis=-1)
    products = ops.matmul(embeddings, ops.transpose(embeddings))
    distances = ops.sqrt(ops.maximum(squared[:, None] + squared[None, :] - 2.0 * products, _EPS))
    batch = ops.shape(embeddings)[0]
    return distances * (1.0 - ops.eye(batch, dtype=distances.dtype))


def _normalised_distances(embeddings):
    distances = pairwise_distances(embeddings)
    positive = ops.cast(distances > 0, distances.dtype)
    mean = ops.sum(distances) / ops.maximum(ops.sum(positive), 1.0)
    return distances / ops.maximum(mean, _EPS)


def _angles(embeddings):
    differences = embeddings[None, :, :] - embeddings[:, None, :]
    # Floored inside the root: a row's difference with itself is 0, where sqrt's gradient is inf (NaN on JAX, PyTorch).
    norms = ops.sqrt(ops.maximum(ops.sum(ops.square(differences), axis=-1, keepdims=True), _EPS**2))
    unit = differences / ops.maximum(norms, _EPS)
    return ops.matmul(unit, ops.transpose(unit, (0, 2, 1)))


def rkd_distance_loss(teacher_features, student_features):
    """Huber loss between the pairwise distances of the batch, each set divided by its mean."""
    teacher, student = as_float32(teacher_features, student_features)
    teacher = ops.stop_gradient(flatten_features(teacher))
    student = flatten_features(student)
    return _smooth_l1(_normalised_distances(student) - _normalised_distances(teacher))


def rkd_angle_loss(teacher_features, student_features):
    """Huber loss between the cosines of the angles formed by every triplet of samples."""
    teacher, student = as_float32(teacher_features, student_features)
    teacher = ops.stop_gradient(flatten_features(teacher))
    student = flatten_features(student)
    return _smooth_l1(_angles(student) - _angles(teacher))


def rkd_loss(teacher_features, student_features, distance_weight=25.0, angle_weight=50.0):
    """RKD = distance_weight * RKD-D + angle_weight * RKD-A, for the batch.

    Formula:
        psi_D(i, j) = ||f_i - f_j|| / mu,  mu = mean over i != j of ||f_i - f_j||
        psi_A(i, j, k) = <e_ij, e_kj>,  e_ij = (f_i - f_j) / ||f_i - f_j||
        loss = w_D * huber(psi_D^s - psi_D^t) + w_A * huber(psi_A^s - psi_A^t)

    References:
        Park, Kim, Lu and Cho, "Relational Knowledge Distillation", CVPR 2019.
    """
    loss = 0.0
    if distance_weight:
        loss = loss + distance_weight * rkd_distance_loss(teacher_features, student_features)
    if angle_weight:
        loss = loss + angle_weight * rkd_angle_loss(teacher_features, student_features)
    return loss


@register_loss("rkd")
class RKDLoss(FeatureLoss):
    """Relational KD on two embeddings of any sizes (a batch-level value).

    Args:
        distance_weight: weight of the distance term (25 in the paper).
        angle_weight: weight of the angle term (50 in the paper).
    """

    fn = staticmethod(rkd_loss)
    per_sample = False
    needs_same_shape = False
    hyperparameters = ("distance_weight", "angle_weight")

    def __init__(
        self, distance_weight=25.0, angle_weight=50.0, reduction="sum_over_batch_size", name="rkd_loss", **kwargs
    ):
        super().__init__(reduction=reduction, name=name, **kwargs)
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)
