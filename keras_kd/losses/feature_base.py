"""Shared pieces of the feature-based losses: no temperature, features flattened per sample."""

from keras_kd.backend import ops
from keras_kd.losses.base import DistillationLoss


def flatten_features(features):
    """`(batch, ...)` to `(batch, prod(...))`."""
    features = ops.convert_to_tensor(features)
    size = 1
    for dim in features.shape[1:]:
        size *= int(dim)
    return ops.reshape(features, (-1, size))


class FeatureLoss(DistillationLoss):
    """A loss of (teacher features, student features) taken from named layers.

    `needs_same_shape` says whether the two feature maps must have the same shape (then
    the Distiller puts an adapter on the student's side when they differ); relational
    losses (RKD, PKT) compare each model with itself and take any two shapes.
    """

    uses_temperature = False
    needs_same_shape = True

    def __init__(self, reduction="sum_over_batch_size", name=None, **kwargs):
        kwargs.pop("temperature", None)
        super().__init__(temperature=None, reduction=reduction, name=name, **kwargs)
