"""Curriculum temperature for knowledge distillation: a temperature learned against the student."""

import math

from keras_kd.backend import keras, ops, register_serializable, to_numpy
from keras_kd.losses.base import DistillationLoss, register_loss
from keras_kd.losses.kd_loss import kd_loss


def reversal_strength(epoch, decay_epochs):
    """The gradient-reversal factor of `epoch`: 0 at the start, then a cosine down to -1 over
    `decay_epochs` epochs, -1 after (the authors' `CosineDecay(max_value=0, min_value=-1)`)."""
    if decay_epochs <= 0 or epoch >= decay_epochs:
        return -1.0
    return -(1.0 - 0.5 * (math.cos(math.pi * max(epoch, 0) / decay_epochs) + 1.0))


@register_serializable("CTKDTemperature")
class CTKDTemperature(keras.layers.Layer):
    """The learnable global temperature: `t_start + t_range * sigmoid(p)`, with `p` (initially 1)
    behind a gradient-reversal layer whose factor (`reversal`, set each epoch) is 0 to -1, so that
    the optimizer that lowers the student's loss raises the distillation loss through T."""

    # Keras reads a layer's __init__ signature, which mutmut's wrapper hides (tools/mutation_test.sh).
    def __init__(self, t_start=1.0, t_range=20.0, **kwargs):  # pragma: no mutate block
        super().__init__(**kwargs)
        self.t_start, self.t_range = float(t_start), float(t_range)
        self.parameter = self.add_weight(shape=(), initializer="ones", trainable=True, name="global_t")
        self.reversal = self.add_weight(shape=(), initializer="zeros", trainable=False, name="reversal")
        self.built = True

    def temperature(self):
        """The temperature as a tensor of the step (called directly: a Keras layer call needs inputs)."""
        p = ops.cast(self.parameter, "float32")
        # Forward: p. Backward: the gradient times `reversal` (Ganin and Lempitsky's layer).
        reversed_p = ops.stop_gradient(p) + ops.cast(self.reversal, "float32") * (p - ops.stop_gradient(p))
        return self.t_start + self.t_range * ops.sigmoid(reversed_p)

    def value(self):
        """The temperature now, as a Python float."""
        return self.t_start + self.t_range / (1.0 + math.exp(-float(to_numpy(self.parameter))))

    def get_config(self):
        return {**super().get_config(), "t_start": self.t_start, "t_range": self.t_range}


@register_loss("ctkd")
class CTKDLoss(DistillationLoss):
    """Hinton's loss at a temperature learned adversarially with a curriculum (global CTKD).

    The temperature is a layer of the loss (`temperature_layer`) that the Distiller trains with the
    student; its gradient is reversed, ever more strongly over the first `decay_epochs` epochs
    (`reversal_strength`), so T moves to where the student finds the teacher hardest to match.
    The Distiller's own temperature is not used. `on_epoch_begin(epoch)` (called by the
    Distiller's `fit`) sets the curriculum.

    Args:
        t_start: the lowest temperature (the authors' 1).
        t_range: the span above it (the authors' 20): T = t_start + t_range * sigmoid(p).
        decay_epochs: epochs over which the reversal grows from 0 to full (the authors' 10).

    References:
        Li, Li, Yang, Wang, Hua, Wang and Chen, "Curriculum Temperature for Knowledge Distillation",
        AAAI 2023.
    """

    uses_temperature = False
    hyperparameters = ("t_start", "t_range", "decay_epochs")

    def __init__(
        self, t_start=1.0, t_range=20.0, decay_epochs=10, reduction="sum_over_batch_size", name="ctkd_loss", **kwargs
    ):
        kwargs.pop("temperature", None)
        if not (float(t_start) > 0 and float(t_range) >= 0):
            raise ValueError(f"CTKD needs t_start > 0 and t_range >= 0; received {t_start!r}, {t_range!r}.")
        self.t_start, self.t_range, self.decay_epochs = float(t_start), float(t_range), int(decay_epochs)
        super().__init__(temperature=None, reduction=reduction, name=name, **kwargs)
        self.temperature_layer = CTKDTemperature(self.t_start, self.t_range, name=f"{name}_temperature")

    @property
    def trainable_layer(self):
        """What the Distiller trains and saves with the student."""
        return self.temperature_layer

    def on_epoch_begin(self, epoch):
        self.temperature_layer.reversal.assign(reversal_strength(epoch, self.decay_epochs))

    def compute(self, teacher, student, labels=None, temperature=1.0):
        return kd_loss(teacher, student, temperature=self.temperature_layer.temperature())
