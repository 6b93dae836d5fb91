"""What only tf_keras (Keras 2) needs to run the Distiller; Keras 3's own steps need none of it.

tf_keras's `compute_loss` has no `training` argument, so its default test step would
run the distillation terms in training mode; its total loss lives in a compiled loss
the Distiller does not use; and its SavedModel keeps no custom compile arguments. This
mixin supplies the steps, the total's tracker (first, where Keras puts `loss`) and the
compile settings carried in the config.
"""

import tensorflow as tf
import tf_keras as keras

from keras_kd.backend import unscale_loss_for_replicas
from keras_kd.data.keys import unpack


class TfKerasSteps:
    """tf_keras's train and test steps around the Distiller's backend-agnostic `compute_loss`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._total_loss_tracker = keras.metrics.Mean(name="loss")

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            # Through `__call__` with the plain inputs: SavedModel records their signature (cached
            # augmented views are not augmented again).
            inputs, cached_logits, _ = unpack(x)
            y_pred = self(inputs, training=True, augment=cached_logits is None)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
        self._track_total_loss(loss, y_pred)
        # `minimize` scales the loss under a LossScaleOptimizer, as tf_keras's own step does.
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(unpack(x)[0], training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
        self._track_total_loss(loss, y_pred)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def _track_total_loss(self, loss, y_pred):
        logits = y_pred["logits"] if isinstance(y_pred, dict) else y_pred  # `call`'s training pass
        self._total_loss_tracker.update_state(unscale_loss_for_replicas(loss), sample_weight=tf.shape(logits)[0])

    @property
    def metrics(self):
        metrics = list(super().metrics)
        metrics.remove(self._total_loss_tracker)
        return [self._total_loss_tracker, *metrics]

    def compile(self, *args, from_serialized=False, **kwargs):
        # tf_keras's SavedModel loader recompiles with the optimizer and metrics only; compile
        # again with the distillation settings saved in the config (and the loader's optimizer).
        saved = getattr(self, "_saved_compile_config", None)
        if from_serialized and saved:
            from keras_kd.saving import compile_arguments

            return self.compile(**{**compile_arguments(saved), "optimizer": kwargs["optimizer"]})
        return super().compile(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        if self.distillation_loss_fn is not None:
            config["compile_config"] = self.get_compile_config()
        return config
