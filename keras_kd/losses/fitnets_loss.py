"""FitNets hints: the student's (adapted) intermediate features regress the teacher's."""

from keras_kd.backend import ops
from keras_kd.losses.base import as_float32, register_loss
from keras_kd.losses.feature_base import FeatureLoss, flatten_features


def fitnets_loss(teacher_features, student_features):
    """Mean squared error between feature maps, one value a sample.

    Formula:
        loss_i = mean_k (r(v_i)[k] - u_i[k])^2
    where u is the teacher's hint layer and r(v) the student's guided layer after the
    regressor (the Distiller's adapter). Averaged over the batch this is the `F.mse_loss`
    of the reference implementations.

    References:
        Romero, Ballas, Kahou, Chassang, Gatta and Bengio, "FitNets: Hints for Thin Deep
        Nets", ICLR 2015.
    """
    teacher_features, student_features = as_float32(teacher_features, student_features)
    difference = flatten_features(student_features) - flatten_features(teacher_features)
    return ops.mean(ops.square(difference), axis=-1)


@register_loss("fitnets", "hint")
class FitNetsLoss(FeatureLoss):
    """FitNets hint loss; the Distiller adds the regressor (adapter) when shapes differ."""

    fn = staticmethod(fitnets_loss)

    def __init__(self, reduction="sum_over_batch_size", name="fitnets_loss", **kwargs):
        super().__init__(reduction=reduction, name=name, **kwargs)
