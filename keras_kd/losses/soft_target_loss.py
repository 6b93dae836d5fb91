"""Any Keras probability loss applied to temperature-softened outputs, as Keras's example does."""

from keras_kd.backend import keras, ops
from keras_kd.losses.base import DistillationLoss, as_float32, register_loss


@register_loss()
class SoftTargetLoss(DistillationLoss):
    """T^2 * loss(softmax(teacher_logits / T), softmax(student_logits / T)).

    This is what the Keras distillation example computes with the loss it is given; it
    lets a user keep a probability loss of their choice (e.g. `"mse"` on soft targets).

    Args:
        loss: a Keras loss on probabilities (instance, function or name).
        temperature: the softening temperature, `None` for the Distiller's.
    """

    def __init__(self, loss, temperature=None, reduction="sum_over_batch_size", name=None, **kwargs):
        if isinstance(loss, (str, dict)):
            loss = keras.losses.get(loss)
        if not callable(loss):
            raise TypeError(f"`loss` must be a Keras loss or a callable; received {loss!r}.")
        self.loss = loss
        inner_name = getattr(loss, "name", None) or getattr(loss, "__name__", "loss")
        super().__init__(
            temperature=temperature,
            reduction=reduction,
            name=name or f"soft_target_{inner_name}",
            **kwargs,
        )

    def compute(self, teacher, student, labels=None, temperature=1.0):
        teacher, student = as_float32(teacher, student)
        teacher_probs = ops.softmax(teacher / temperature, axis=-1)
        student_probs = ops.softmax(student / temperature, axis=-1)
        # A Loss instance's `call` returns unreduced values; a plain function does too.
        unreduced = getattr(self.loss, "call", self.loss)
        return unreduced(teacher_probs, student_probs) * (temperature**2)

    def get_config(self):
        config = super().get_config()
        if isinstance(self.loss, keras.losses.Loss):
            config["loss"] = keras.losses.serialize(self.loss)
        else:  # a loss function, such as keras.losses.mean_squared_error, by its name
            config["loss"] = self.loss.__name__
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)
