"""Attention transfer: match where in the image each network's activations concentrate."""

from keras_kd.backend import ops
from keras_kd.losses.base import as_float32, register_loss
from keras_kd.losses.feature_base import FeatureLoss, flatten_features

_EPS = 1e-12


def attention_map(features, p=2.0):
    """Spatial attention of `(batch, height, width, channels)` features, L2-normalised.

    Formula:
        Q = vec(mean_c |A_c|^p);  attention = Q / ||Q||_2
    """
    features = ops.convert_to_tensor(features)
    energy = ops.mean(ops.abs(features) ** p, axis=-1)
    flat = flatten_features(energy)
    norm = ops.sqrt(ops.sum(ops.square(flat), axis=-1, keepdims=True))
    return flat / ops.maximum(norm, _EPS)


def attention_transfer_loss(teacher_features, student_features, p=2.0):
    """Mean squared difference of the normalised attention maps, one value a sample.

    Channels may differ; the spatial size must match. Averaged over the batch this is the
    `(at(f_s) - at(f_t)).pow(2).mean()` of the authors' code (weighted by beta = 1000 there).

    References:
        Zagoruyko and Komodakis, "Paying More Attention to Attention: Improving the
        Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017.
    """
    teacher_features, student_features = as_float32(teacher_features, student_features)
    if tuple(teacher_features.shape[1:-1]) != tuple(student_features.shape[1:-1]):
        raise ValueError(
            f"Attention transfer compares spatial maps: the teacher's are "
            f"{tuple(teacher_features.shape[1:-1])}, the student's {tuple(student_features.shape[1:-1])}. "
            "Pick layers of the same spatial size."
        )
    difference = attention_map(student_features, p) - attention_map(teacher_features, p)
    return ops.mean(ops.square(difference), axis=-1)


@register_loss("attention_transfer", "at")
class AttentionTransferLoss(FeatureLoss):
    """Attention transfer between two convolutional feature maps (NHWC); weight ~1000 as in the paper's code."""

    fn = staticmethod(attention_transfer_loss)
    needs_same_shape = False
    hyperparameters = ("p",)

    def __init__(self, p=2.0, reduction="sum_over_batch_size", name="attention_transfer_loss", **kwargs):
        super().__init__(reduction=reduction, name=name, **kwargs)
        self.p = float(p)
