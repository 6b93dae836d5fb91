"""Keras losses applied the way `keras.distillation` applies them, for its objects translated by
`keras_kd.keras_compat`: a Keras loss on the logits divided by T, a Keras loss between two
layers' features, and a user's own `keras.distillation.DistillationLoss` subclass."""

from keras_kd.backend import keras, ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss
from keras_kd.losses.feature_base import FeatureLoss


def _resolve(loss):
    if isinstance(loss, (str, dict)):
        loss = keras.losses.get(loss)
    if not callable(loss):
        raise TypeError(f"`loss` must be a Keras loss or a callable; received {loss!r}.")
    return loss


def _unreduced(loss, y_true, y_pred, rank=1):
    """A Keras loss's values of rank `rank` (1: per sample; 2: per token of a sequence), averaged over
    any axes left after its own reduction."""
    values = getattr(loss, "call", loss)(y_true, y_pred)  # a Loss instance's `call` does not reduce
    values = ops.convert_to_tensor(values)
    while len(values.shape) > rank:
        values = ops.mean(values, axis=-1)
    return values


def _serialize_loss(loss):
    if isinstance(loss, keras.losses.Loss):
        return keras.losses.serialize(loss)
    return loss.__name__  # a loss function, such as keras.losses.mean_squared_error


@register_loss("keras_logits_loss")
class KerasLogitsLoss(DistillationLoss):
    """loss(teacher_logits / T, student_logits / T): a Keras loss on tempered logits.

    What `keras.distillation.LogitsDistillation(temperature, loss)` computes for a loss that
    compares logits (MSE, MAE, Huber: logit matching scaled by 1/T^2). Losses on probabilities
    (KL, cross-entropy) are translated to `KDLoss` and `SoftTargetCrossentropy` instead.

    Args:
        loss: a Keras loss (instance, function or name).
        temperature: the divisor T, `None` for the Distiller's.
    """

    def __init__(self, loss="mse", temperature=None, reduction="sum_over_batch_size", name=None, **kwargs):
        self.loss = _resolve(loss)
        inner = getattr(self.loss, "name", None) or getattr(self.loss, "__name__", "loss")
        super().__init__(temperature=temperature, reduction=reduction, name=name or f"logits_{inner}", **kwargs)

    def compute(self, teacher, student, labels=None, temperature=1.0):
        teacher, student = as_float32(teacher, student)
        # One value per position of the logits (per token of sequence logits, weighed by padding).
        return _unreduced(self.loss, teacher / temperature, student / temperature, rank=len(student.shape) - 1)

    def get_config(self):
        return {**super().get_config(), "loss": _serialize_loss(self.loss)}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "loss": keras.losses.deserialize(config["loss"])})


@register_loss("keras_feature_loss")
class KerasFeatureLoss(FeatureLoss):
    """A Keras loss (`"mse"`, `"cosine_similarity"`, ...) between a teacher layer's and a student
    layer's outputs of the same shape, averaged per sample: `keras.distillation.FeatureDistillation`."""

    def __init__(self, loss="mse", reduction="sum_over_batch_size", name=None, **kwargs):
        self.loss = _resolve(loss)
        inner = getattr(self.loss, "name", None) or getattr(self.loss, "__name__", "loss")
        super().__init__(reduction=reduction, name=name or f"feature_{inner}", **kwargs)

    def compute(self, teacher, student, labels=None, temperature=1.0):
        teacher, student = as_float32(teacher, student)
        return _unreduced(self.loss, teacher, student)

    def get_config(self):
        return {**super().get_config(), "loss": _serialize_loss(self.loss)}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "loss": keras.losses.deserialize(config["loss"])})


@register_loss()
class KerasCustomLoss(DistillationLoss):
    """A user's own `keras.distillation.DistillationLoss` subclass: its `compute_loss(teacher
    outputs, student outputs)` gives the loss of the batch, as Keras's Distiller calls it."""

    per_sample = False
    uses_temperature = False

    def __init__(self, loss, reduction="sum_over_batch_size", name=None, **kwargs):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not callable(getattr(loss, "compute_loss", None)):
            raise TypeError(f"`loss` must have a `compute_loss(teacher, student)` method; received {loss!r}.")
        self.loss = loss
        kwargs.pop("temperature", None)
        super().__init__(temperature=None, reduction=reduction, name=name or type(loss).__name__, **kwargs)

    def compute(self, teacher, student, labels=None, temperature=1.0):
        return ops.cast(self.loss.compute_loss(teacher, student), "float32")

    def get_config(self):
        return {**super().get_config(), "loss": keras.saving.serialize_keras_object(self.loss)}


@register_loss()
class WeightedLosses(DistillationLoss):
    """sum_i weight_i * loss_i: several response losses given to the Distiller at once (each keeps
    the temperature it was given; one of `None` takes the Distiller's)."""

    per_sample = False

    def __init__(self, losses=(), weights=None, reduction="sum_over_batch_size", name="weighted_losses", **kwargs):
        from keras_kd import losses as kd_losses

        kwargs.pop("temperature", None)
        self.losses = [kd_losses.get(loss) for loss in losses]
        self.weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.losses):
            raise ValueError(f"{len(self.losses)} losses but {len(self.weights)} weights; give one weight a loss.")
        self.needs_labels = any(loss.needs_labels for loss in self.losses)
        super().__init__(temperature=None, reduction=reduction, name=name, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None, labels=None, temperature=None):
        total = ops.zeros((), dtype="float32")
        for loss, weight in zip(self.losses, self.weights):
            value = loss(y_true, y_pred, sample_weight=sample_weight, labels=labels, temperature=temperature)
            total = total + weight * ops.cast(value, "float32")
        return total

    def get_config(self):
        from keras_kd import losses as kd_losses

        config = super().get_config()
        config.update(losses=[kd_losses.serialize(loss) for loss in self.losses], weights=self.weights)
        return config
