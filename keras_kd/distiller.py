"""`Distiller`: a Keras model that trains a student on a frozen teacher's soft targets."""

from keras_kd import losses as kd_losses
from keras_kd.backend import (
    IS_TF_KERAS,
    assert_model_of_engine,
    is_tensorflow_backed,
    keras,
    ops,
    register_serializable,
)
from keras_kd.validation import (
    check_not_empty,
    check_outputs_are_logits,
    check_outputs_compatible,
    validate_alpha,
)

if is_tensorflow_backed():
    import tensorflow as tf


@register_serializable("Distiller")
class Distiller(keras.Model):
    """Trains `student` to match `teacher`'s temperature-softened outputs and the labels.

    Formula:
        loss = alpha * student_loss(y, s) + (1 - alpha) * distillation_loss(t, s)
        distillation_loss(t, s) = T^2 * KL(softmax(t / T) || softmax(s / T))  (default)

    The teacher is frozen (`trainable = False`) and always runs with `training=False`;
    only the student's trainable weights get gradients. `predict` and `call` return the
    student's logits, and `evaluate` reports the same terms as `fit`: `loss` (the total),
    `student_loss`, `distillation_loss` and the compiled metrics on the student's output.
    It is a drop-in for the `Distiller` of the Keras distillation example.

    Args:
        student: the model to train; a Keras model of the active engine that outputs logits.
        teacher: the trained model to learn from; same engine, same output shape.

    Raises:
        TypeError: a model that is not a Keras model of the active engine.
        ValueError: output shapes that differ, or a model that ends in softmax.

    Example:
    >>> distiller = Distiller(student=student, teacher=teacher)
    >>> distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=3.0)
    >>> distiller.fit(x_train, y_train, epochs=3)
    >>> distiller.student.save("student.keras")

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """

    def __init__(self, student, teacher, **kwargs):
        super().__init__(**kwargs)
        assert_model_of_engine(student, "student")
        assert_model_of_engine(teacher, "teacher")
        check_outputs_are_logits(student, "student")
        check_outputs_are_logits(teacher, "teacher")
        check_outputs_compatible(teacher, student)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = 0.1
        self.temperature = 3.0
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        self._saved_compile_config = None
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        # Keras 3 keeps the total in its own `_loss_tracker`; tf_keras needs one of ours.
        self._total_loss_tracker = keras.metrics.Mean(name="loss") if IS_TF_KERAS else None

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=0.1,
        temperature=3.0,
        **kwargs,
    ):
        """Configure training, with the arguments of the Keras distillation example.

        Args:
            optimizer: optimizer for the student's weights.
            metrics: metrics of the student's predictions against the labels.
            student_loss_fn: loss on labels; default cross-entropy from logits (sparse or
                one-hot labels). A Keras cross-entropy must have `from_logits=True`.
            distillation_loss_fn: a keras-kd loss, a name (`"kd"`, `"kl_divergence"`, ...),
                or a Keras probability loss such as `keras.losses.KLDivergence()`, which is
                applied to `softmax(logits / T)` and scaled by T^2 as in the Keras example
                (KL is computed in log space, so it is exact for extreme logits).
            alpha: weight of the student loss; `1 - alpha` weighs the distillation loss.
            temperature: T > 0 that softens both models' outputs.
            **kwargs: passed on to `keras.Model.compile` (e.g. `jit_compile`, `steps_per_execution`).

        Raises:
            ValueError: `alpha` outside [0, 1], `temperature <= 0`, an unknown loss.
        """
        if "loss" in kwargs and kwargs["loss"] is not None:
            raise ValueError(
                "Distiller.compile takes `student_loss_fn` and `distillation_loss_fn`, not "
                "`loss`; received loss={!r}.".format(kwargs["loss"])
            )
        kwargs.pop("loss", None)
        if kwargs.pop("from_serialized", False) and self._saved_compile_config:
            # tf_keras's SavedModel loader recompiles with the optimizer and metrics only;
            # the distillation settings come from the config saved with the model.
            saved = self._saved_compile_config
            metrics = _map_nested(keras.saving.deserialize_keras_object, saved["metrics"])
            student_loss_fn = keras.saving.deserialize_keras_object(saved["student_loss_fn"])
            distillation_loss_fn = kd_losses.deserialize(saved["distillation_loss_fn"])
            alpha, temperature = saved["alpha"], saved["temperature"]
        self.alpha = validate_alpha(alpha)
        kd_losses.validate_temperature(temperature, "temperature")
        self.temperature = float(temperature)
        self._user_student_loss_fn = student_loss_fn
        self._user_distillation_loss_fn = distillation_loss_fn
        self.student_loss_fn = kd_losses.get_student_loss(student_loss_fn)
        self.distillation_loss_fn = kd_losses.get(distillation_loss_fn).with_temperature(
            self.temperature
        )
        self._user_metrics = metrics
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    # The loss ------------------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The combined loss of one batch; also updates the per-term trackers.

        Keras's default steps on every backend call this; the TensorFlow steps below do too.
        """
        if y_pred is None:
            y_pred = self(x, training=training)
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        distillation_loss = self.distillation_loss_fn(
            teacher_logits, y_pred, sample_weight=sample_weight
        )
        if self.alpha > 0:
            if y is None:
                raise ValueError(
                    f"The data has no labels, but alpha={self.alpha} weighs a loss on labels. "
                    "Pass labels (x, y), or compile with alpha=0 to distil from the teacher alone."
                )
            student_loss = self.student_loss_fn(y, y_pred, sample_weight=sample_weight)
        else:
            student_loss = ops.zeros_like(distillation_loss)
        total = self.alpha * student_loss + (1.0 - self.alpha) * distillation_loss
        regularization = self.student.losses
        if regularization:
            total = total + ops.sum(ops.stack([ops.cast(r, total.dtype) for r in regularization]))
        batch_size = ops.shape(y_pred)[0]
        self.student_loss_tracker.update_state(student_loss, sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(distillation_loss, sample_weight=batch_size)
        return total

    # TensorFlow training and evaluation steps -------------------------------------------

    def train_step(self, *args, **kwargs):
        """One step: teacher and student forward, gradients for the student's weights only."""
        if not is_tensorflow_backed():
            return super().train_step(*args, **kwargs)
        (data,) = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
            self._track_total_loss(loss, y_pred)
            scaled_loss = self._scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._metrics_result(x, y, y_pred, sample_weight)

    def test_step(self, *args, **kwargs):
        """Evaluation reports the same terms as training: total, student and distillation loss."""
        if not is_tensorflow_backed():
            return super().test_step(*args, **kwargs)
        (data,) = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        self._track_total_loss(loss, y_pred)
        return self._metrics_result(x, y, y_pred, sample_weight)

    def _metrics_result(self, x, y, y_pred, sample_weight):
        if y is None:  # Distilling unlabelled data: only the loss terms are defined.
            return {m.name: m.result() for m in self._loss_metrics()}
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _loss_metrics(self):
        total = self._total_loss_tracker if IS_TF_KERAS else self._loss_tracker
        return [total, self.student_loss_tracker, self.distillation_loss_tracker]

    def _track_total_loss(self, loss, y_pred):
        batch_size = tf.shape(y_pred)[0]
        if IS_TF_KERAS:
            self._total_loss_tracker.update_state(loss, sample_weight=batch_size)
        else:
            from keras.src.losses import loss as keras_loss_module

            self._loss_tracker.update_state(
                keras_loss_module.unscale_loss_for_distribution(loss), sample_weight=batch_size
            )

    def _scale_loss(self, loss):
        if IS_TF_KERAS:
            if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
                return self.optimizer.get_scaled_loss(loss)
            return loss
        return self.optimizer.scale_loss(loss)

    @property
    def metrics(self):
        metrics = list(super().metrics)
        if IS_TF_KERAS:
            # Put the total first, where Keras puts `loss`.
            metrics.remove(self._total_loss_tracker)
            metrics.insert(0, self._total_loss_tracker)
        else:
            # Unlabelled data (alpha=0) never builds the label metrics; leave them out.
            compile_metrics = getattr(self, "_compile_metrics", None)
            if compile_metrics is not None and not compile_metrics.built:
                metrics = [m for m in metrics if m is not compile_metrics]
        return metrics

    # Guards against data that would train on nothing ------------------------------------

    def fit(self, x=None, y=None, *args, **kwargs):
        check_not_empty(x, "x")
        if kwargs.get("validation_data") is not None:
            check_not_empty(kwargs["validation_data"], "validation_data")
        self._check_compiled()
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        check_not_empty(x, "x")
        self._check_compiled()
        return super().evaluate(x, y, *args, **kwargs)

    def _check_compiled(self):
        if self.distillation_loss_fn is None:
            raise RuntimeError(
                "Call `distiller.compile(optimizer=..., alpha=..., temperature=...)` before "
                "`fit` or `evaluate`."
            )

    # Serialization --------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "student": _without_compile_config(keras.layers.serialize(self.student)),
                "teacher": _without_compile_config(keras.layers.serialize(self.teacher)),
            }
        )
        if IS_TF_KERAS and self.distillation_loss_fn is not None:
            # A tf_keras SavedModel keeps no custom compile arguments; carry them here.
            config["compile_config"] = self.get_compile_config()
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        student = keras.layers.deserialize(config.pop("student"), custom_objects=custom_objects)
        teacher = keras.layers.deserialize(config.pop("teacher"), custom_objects=custom_objects)
        saved_compile_config = config.pop("compile_config", None)
        distiller = cls(student=student, teacher=teacher, **config)
        distiller._saved_compile_config = saved_compile_config
        return distiller

    def get_compile_config(self):
        if self.distillation_loss_fn is None:
            return None if IS_TF_KERAS else {}
        serialize = keras.saving.serialize_keras_object
        return {
            "optimizer": serialize(self.optimizer),
            "metrics": _map_nested(serialize, _plain(self._user_metrics)),
            "student_loss_fn": serialize(self.student_loss_fn),
            "distillation_loss_fn": kd_losses.serialize(self.distillation_loss_fn),
            "alpha": self.alpha,
            "temperature": self.temperature,
        }

    def compile_from_config(self, config):
        deserialize = keras.saving.deserialize_keras_object
        self.compile(
            optimizer=deserialize(config["optimizer"]),
            metrics=_map_nested(deserialize, config["metrics"]),
            student_loss_fn=deserialize(config["student_loss_fn"]),
            distillation_loss_fn=kd_losses.deserialize(config["distillation_loss_fn"]),
            alpha=config["alpha"],
            temperature=config["temperature"],
        )
        if self.built:
            # Create the optimizer's slots so that a saved optimizer state can load into them.
            self.optimizer.build(self.trainable_variables)


def _plain(value):
    """Undo tf_keras's tracking wrappers (ListWrapper, _DictWrapper) before serializing."""
    if isinstance(value, dict) or type(value).__name__ == "_DictWrapper":
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListWrapper":
        return [_plain(item) for item in value]
    return value


def _map_nested(function, value):
    """Apply `function` to each metric in a (possibly nested) list or dict of metrics."""
    if value is None or isinstance(value, str):
        return value  # Metric names serialize as themselves.
    if isinstance(value, dict) and "class_name" not in value:
        return {key: _map_nested(function, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_map_nested(function, item) for item in value]
    return function(value)


def _without_compile_config(config):
    """The models' own training setups are not the Distiller's: do not restore them."""
    config = dict(config)
    config.pop("compile_config", None)
    return config
