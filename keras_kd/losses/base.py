"""The base class of keras-kd's distillation losses.

A distillation loss is a Keras `Loss` whose `y_true` is the teacher's output and whose
`y_pred` is the student's, so it reduces and weighs samples exactly as Keras losses do
and serializes with `get_config`. Temperature-based losses keep `temperature=None` to
mean "use the Distiller's temperature".
"""

from keras_kd.backend import IS_TF_KERAS, keras


class DistillationLoss(keras.losses.Loss):
    """A Keras loss of (teacher output, student output), possibly tempered.

    Args:
        temperature: softening temperature, or `None` to take the Distiller's
            (1.0 when the loss is called on its own).
        reduction: a Keras reduction name; `"sum_over_batch_size"` by default.
        name: the loss name.
    """

    uses_temperature = True

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name=None, **kwargs):
        init_keras_loss(super(), reduction, name, kwargs)
        if temperature is not None:
            validate_temperature(temperature, "temperature")
        self.temperature = temperature

    @property
    def effective_temperature(self):
        return 1.0 if self.temperature is None else self.temperature

    def with_temperature(self, temperature):
        """A copy of this loss at `temperature`, unless it fixed its own."""
        if self.temperature is not None or not self.uses_temperature:
            return self
        config = self.get_config()
        config["temperature"] = temperature
        return self.__class__.from_config(config)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config


def init_keras_loss(parent, reduction, name, kwargs):
    """Call `keras.losses.Loss.__init__` through `parent` with what the active engine accepts."""
    if IS_TF_KERAS:
        kwargs.pop("dtype", None)  # Keras 3 configs carry it; tf_keras losses have none.
        parent.__init__(reduction=reduction, name=name, **kwargs)
    else:
        parent.__init__(reduction=reduction, name=name, **kwargs)


def validate_temperature(temperature, argument):
    """Raise a ValueError naming `argument` unless `temperature` is a positive number."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{argument}` must be a positive number; received {temperature!r}."
        ) from None
    if not value > 0:
        raise ValueError(
            f"`{argument}` must be > 0 (it divides the logits); received {temperature!r}. "
            "Typical values lie between 1 and 20."
        )
