"""Distillation losses: pure functions, serializable classes, and `get` to resolve either.

Every loss here takes the teacher's output as `y_true` and the student's as `y_pred`.
`get` is what the Distiller uses for `distillation_loss_fn`; it maps Keras's
`KLDivergence` (instance, function or name) to the stable Hinton loss, and wraps any
other Keras probability loss in `SoftTargetLoss`, as the Keras example would.
"""

from keras_kd.backend import keras
from keras_kd.checks import validate_temperature
from keras_kd.losses.attention_transfer_loss import (
    AttentionTransferLoss,
    attention_map,
    attention_transfer_loss,
)
from keras_kd.losses.base import (
    LOSSES,
    DistillationLoss,
    mixture_logits,
    register_loss,
    standardize_logits,
)
from keras_kd.losses.crd_loss import CRDHead, CRDLoss, nce_loss
from keras_kd.losses.ctkd_loss import CTKDLoss, CTKDTemperature, reversal_strength
from keras_kd.losses.dist_loss import DISTLoss, dist_loss
from keras_kd.losses.divergences import (
    ForwardKLLoss,
    GeneralizedJSDLoss,
    ReverseKLLoss,
    SkewKLLoss,
    SkewReverseKLLoss,
    forward_kl,
    generalized_jsd,
    reverse_kl,
    skew_kl,
    skew_reverse_kl,
)
from keras_kd.losses.dkd_loss import DKDLoss, dkd_loss
from keras_kd.losses.feature_base import FeatureLoss
from keras_kd.losses.fitnets_loss import FitNetsLoss, fitnets_loss
from keras_kd.losses.kd_loss import KDLoss, LSKDLoss, kd_loss
from keras_kd.losses.keras_losses import KerasCustomLoss, KerasFeatureLoss, KerasLogitsLoss, WeightedLosses
from keras_kd.losses.logits_crossentropy import LogitsCrossentropy
from keras_kd.losses.mlkd_loss import MLKDLoss, mlkd_loss
from keras_kd.losses.pkt_loss import PKTLoss, pkt_loss
from keras_kd.losses.response_losses import (
    LogitsMSE,
    SoftTargetCrossentropy,
    logits_mse,
    soft_target_crossentropy,
)
from keras_kd.losses.rkd_loss import RKDLoss, rkd_angle_loss, rkd_distance_loss, rkd_loss
from keras_kd.losses.soft_target_loss import SoftTargetLoss
from keras_kd.losses.uld_loss import ULDLoss, uld_loss

# Every loss class is registered where it is defined (`@register_loss`), by class name and short names.
_CLASSES = {cls.__name__: cls for cls in LOSSES.values()}


def known_names():
    """The distillation-loss names `get` accepts, sorted."""
    return LOSSES.names()


def _is_kl_divergence(loss):
    kl_classes = (keras.losses.KLDivergence,)
    if isinstance(loss, kl_classes):
        return True
    return getattr(loss, "__name__", None) in ("kl_divergence", "kld", "kullback_leibler_divergence")


def _reduction_of(loss):
    reduction = getattr(loss, "reduction", None)
    return reduction if reduction not in (None, "auto") else "sum_over_batch_size"


def get(identifier):
    """Resolve a distillation loss from a name, a config dict, a callable or an instance.

    Args:
        identifier: `None` (Hinton KD), a name (see `known_names()`, or any Keras loss
            name, applied to soft targets), a dict from `serialize`, a `DistillationLoss`,
            a Keras loss instance or a loss function.

    Returns:
        A `DistillationLoss`.

    Raises:
        ValueError: for a name or object that is no loss; the message lists known names.
    """
    if identifier is None:
        return KDLoss()
    if isinstance(identifier, DistillationLoss):
        return identifier
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return deserialize(identifier)
        return from_spec(identifier)
    if isinstance(identifier, str):
        if identifier in LOSSES:
            return LOSSES[identifier]()
        try:
            keras_loss = keras.losses.get(identifier)
        except (ValueError, TypeError):
            keras_loss = None
        if keras_loss is None:
            LOSSES.lookup(identifier)  # raises, listing the known names
        identifier = keras_loss
    if _is_kl_divergence(identifier):
        return KDLoss(reduction=_reduction_of(identifier))
    if callable(identifier):
        return SoftTargetLoss(identifier, reduction=_reduction_of(identifier))
    raise ValueError(
        f"Could not interpret distillation loss identifier: {identifier!r}. Pass a name "
        f"({', '.join(known_names())}), a Keras loss, or a callable."
    )


_LOGITS_CROSSENTROPY_NAMES = {
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy",
}


def get_student_loss(identifier):
    """Resolve the student's loss on labels; the student outputs logits, so say so.

    `None` gives `LogitsCrossentropy` (sparse or one-hot labels). A cross-entropy name
    gives the Keras class with `from_logits=True`. A Keras loss built with
    `from_logits=False` is refused: it would read the student's logits as probabilities.
    """
    if identifier is None:
        return LogitsCrossentropy()
    if isinstance(identifier, str) and identifier in _LOGITS_CROSSENTROPY_NAMES:
        return getattr(keras.losses, _LOGITS_CROSSENTROPY_NAMES[identifier])(from_logits=True)
    if isinstance(identifier, (str, dict)):
        identifier = keras.losses.get(identifier)
    if not callable(identifier):
        raise ValueError(f"`student_loss_fn` must be a Keras loss, a loss name or a callable; received {identifier!r}.")
    config = identifier.get_config() if hasattr(identifier, "get_config") else {}
    if config.get("from_logits") is False:
        raise ValueError(
            f"`student_loss_fn` ({type(identifier).__name__}) has from_logits=False, but "
            "the Distiller gives it the student's logits. Pass "
            f"keras.losses.{type(identifier).__name__}(from_logits=True)."
        )
    return identifier


def from_spec(spec):
    """A loss from `{"name": <registered name>, <constructor argument>: value, ...}`.

    This is the form YAML configs use; unknown names or arguments raise a ValueError that
    lists what is accepted.
    """
    spec = dict(spec)
    cls = LOSSES.lookup(spec.pop("name", None) or spec.pop("key", None))
    try:
        return cls(**spec)
    except TypeError as error:
        import inspect

        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
        raise ValueError(
            f"Bad arguments for distillation loss {cls.__name__}: {error}. It accepts: {', '.join(accepted)}."
        ) from None


def serialize(loss):
    """A JSON-able config of a distillation loss."""
    return keras.saving.serialize_keras_object(loss)


def deserialize(config):
    """The distillation loss described by `config` (from `serialize`)."""
    class_name = config.get("class_name", "")
    short = class_name.split(">")[-1]
    custom = {name: cls for name, cls in _CLASSES.items()}
    custom.update({f"keras_kd>{name}": cls for name, cls in _CLASSES.items()})
    if short not in _CLASSES and class_name not in custom:
        raise ValueError(
            f"Could not interpret distillation loss config of class {class_name!r}; "
            f"known classes: {', '.join(sorted(_CLASSES))}."
        )
    return keras.saving.deserialize_keras_object(config, custom_objects=custom)


__all__ = [
    "AttentionTransferLoss",
    "CRDHead",
    "CRDLoss",
    "CTKDLoss",
    "CTKDTemperature",
    "DISTLoss",
    "DKDLoss",
    "DistillationLoss",
    "FeatureLoss",
    "FitNetsLoss",
    "ForwardKLLoss",
    "GeneralizedJSDLoss",
    "KDLoss",
    "LSKDLoss",
    "KerasCustomLoss",
    "KerasFeatureLoss",
    "KerasLogitsLoss",
    "LogitsMSE",
    "MLKDLoss",
    "PKTLoss",
    "RKDLoss",
    "ReverseKLLoss",
    "SkewKLLoss",
    "SkewReverseKLLoss",
    "SoftTargetCrossentropy",
    "ULDLoss",
    "attention_map",
    "attention_transfer_loss",
    "dist_loss",
    "dkd_loss",
    "fitnets_loss",
    "forward_kl",
    "from_spec",
    "generalized_jsd",
    "reverse_kl",
    "reversal_strength",
    "skew_kl",
    "skew_reverse_kl",
    "logits_mse",
    "mlkd_loss",
    "nce_loss",
    "pkt_loss",
    "rkd_angle_loss",
    "rkd_distance_loss",
    "rkd_loss",
    "soft_target_crossentropy",
    "uld_loss",
    "standardize_logits",
    "LogitsCrossentropy",
    "SoftTargetLoss",
    "WeightedLosses",
    "deserialize",
    "get",
    "get_student_loss",
    "kd_loss",
    "known_names",
    "serialize",
    "LOSSES",
    "mixture_logits",
    "register_loss",
    "validate_temperature",
]
