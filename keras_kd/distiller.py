"""`Distiller`: a Keras model that trains a student on frozen teachers' soft targets and features."""

import numpy as np

from keras_kd import losses as kd_losses
from keras_kd import recipes as kd_recipes
from keras_kd.backend import (
    IS_TF_KERAS,
    assert_model_of_engine,
    is_tensorflow_backed,
    keras,
    ops,
    register_serializable,
    set_keras_mask,
)
from keras_kd.feature_distillation import FeatureDistillation, build_adapter, feature_model
from keras_kd.inputs import unpack
from keras_kd.teacher_cache import TeacherCache
from keras_kd.transfer_data import fill_missing, label_mask, masked_weight
from keras_kd.validation import (
    check_not_empty,
    check_outputs_are_logits,
    check_outputs_compatible,
    validate_alpha,
)

if is_tensorflow_backed():
    import tensorflow as tf


def _scalar_variable(value, name):
    if IS_TF_KERAS:
        return tf.Variable(float(value), trainable=False, dtype="float32", name=name)
    return keras.Variable(float(value), trainable=False, dtype="float32", name=name)


@register_serializable("Distiller")
class Distiller(keras.Model):
    """Trains `student` to match `teacher`'s temperature-softened outputs and the labels.

    Formula:
        loss = alpha * student_loss(y, s) + (1 - alpha) * distillation_loss(t, s)
               + sum_k weight_k * feature_loss_k(teacher features_k, student features_k)
        distillation_loss(t, s) = T^2 * KL(softmax(t / T) || softmax(s / T))  (default)

    The teachers are frozen (`trainable = False`) and always run with `training=False`;
    only the student's trainable weights (and feature adapters) get gradients. `predict`
    and `call` return the student's logits, and `evaluate` reports the same terms as
    `fit`: `loss` (the total), `student_loss`, `distillation_loss`, one `<name>_loss` per
    feature term, and the compiled metrics on the student's output. It is a drop-in for
    the `Distiller` of the Keras distillation example.

    Args:
        student: the model to train; a Keras model of the active engine that outputs logits.
        teacher: the trained model to learn from (same engine, same output shape), or a
            list of them: their soft targets are averaged (`teacher_weights`) at temperature T.
        teacher_weights: weights of several teachers' soft targets; equal by default.
        features: `FeatureDistillation` terms between named teacher and student layers
            (taken from the first teacher).

    Raises:
        TypeError: a model that is not a Keras model of the active engine, or a subclassed
            model where features are asked of it.
        ValueError: output shapes that differ, a model that ends in softmax, a layer name
            that does not exist, feature shapes that no adapter can reconcile.

    Example:
    >>> distiller = Distiller(student=student, teacher=teacher)
    >>> distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=3.0)
    >>> distiller.fit(x_train, y_train, epochs=3)
    >>> distiller.student.save("student.keras")

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """

    def __init__(self, student, teacher, teacher_weights=None, features=None, **kwargs):
        super().__init__(**kwargs)
        teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if not teachers:
            raise ValueError("`teacher` must be a model or a non-empty list of models.")
        assert_model_of_engine(student, "student")
        check_outputs_are_logits(student, "student")
        for index, model in enumerate(teachers):
            argument = "teacher" if len(teachers) == 1 else f"teacher[{index}]"
            assert_model_of_engine(model, argument)
            check_outputs_are_logits(model, argument)
            check_outputs_compatible(model, student)
            model.trainable = False
        self.student = student
        self.teachers = teachers
        self.teacher_weights = self._validate_teacher_weights(teacher_weights, len(teachers))
        self.features = [self._as_feature_term(term) for term in (features or [])]
        self._build_feature_extractors()

        self._alpha_value = 0.1
        self._temperature_value = 3.0
        self._alpha = _scalar_variable(self._alpha_value, "alpha")
        self._temperature = _scalar_variable(self._temperature_value, "temperature")
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        self.augmentation = None
        self._saved_compile_config = None
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.feature_loss_trackers = [keras.metrics.Mean(name=f"{term.name}_loss") for term in self.features]
        # Keras 3 keeps the total in its own `_loss_tracker`; tf_keras needs one of ours.
        self._total_loss_tracker = keras.metrics.Mean(name="loss") if IS_TF_KERAS else None

    # Construction helpers ---------------------------------------------------------------

    @property
    def teacher(self):
        """The (first) teacher."""
        return self.teachers[0]

    @staticmethod
    def _validate_teacher_weights(weights, count):
        if weights is None:
            return [1.0 / count] * count
        weights = [float(w) for w in weights]
        if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(
                f"`teacher_weights` must be {count} non-negative numbers with a positive sum, one "
                f"per teacher; received {weights}."
            )
        total = sum(weights)
        return [w / total for w in weights]

    @staticmethod
    def _as_feature_term(term):
        if isinstance(term, FeatureDistillation):
            return term
        if isinstance(term, dict):
            return FeatureDistillation(**term)
        raise TypeError(f"`features` takes FeatureDistillation terms or dicts; received {term!r}.")

    def _build_feature_extractors(self):
        self._teacher_features = None
        self._student_features = None
        self.adapters = []
        if not self.features:
            return
        self._teacher_features = feature_model(self.teacher, [t.teacher_layer for t in self.features], "teacher")
        self._teacher_features.trainable = False
        self._student_features = feature_model(self.student, [t.student_layer for t in self.features], "student")
        for term, teacher_out, student_out in zip(
            self.features, self._teacher_features.outputs[1:], self._student_features.outputs[1:]
        ):
            if hasattr(term.loss, "build_head"):  # CRD: embeddings and memory banks
                self.adapters.append(term.loss.build_head(student_out.shape, teacher_out.shape, f"{term.name}_head"))
                continue
            adapter = build_adapter(term, student_out.shape, teacher_out.shape)
            self.adapters.append(adapter if adapter is not None else keras.layers.Identity(name=f"{term.name}_id"))

    # Alpha and temperature live in variables, so schedules change them without retracing.

    @property
    def alpha(self):
        return self._alpha_value

    @alpha.setter
    def alpha(self, value):
        self._alpha_value = validate_alpha(value)
        if hasattr(self, "_alpha"):
            self._alpha.assign(self._alpha_value)

    @property
    def temperature(self):
        return self._temperature_value

    @temperature.setter
    def temperature(self, value):
        kd_losses.validate_temperature(value, "temperature")
        self._temperature_value = float(value)
        if hasattr(self, "_temperature"):
            self._temperature.assign(self._temperature_value)

    # compile ------------------------------------------------------------------------------

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=None,
        temperature=None,
        augmentation=None,
        recipe=None,
        **kwargs,
    ):
        """Configure training, with the arguments of the Keras distillation example.

        Args:
            optimizer: optimizer for the student's weights.
            metrics: metrics of the student's predictions against the labels.
            student_loss_fn: loss on labels; default cross-entropy from logits (sparse or
                one-hot labels). A Keras cross-entropy must have `from_logits=True`.
            distillation_loss_fn: a keras-kd loss, a name (`"kd"`, `"dkd"`, `"dist"`, ...), or
                a Keras probability loss such as `keras.losses.KLDivergence()`, which is
                applied to `softmax(logits / T)` and scaled by T^2 as in the Keras example
                (KL is computed in log space, so it is exact for extreme logits).
            alpha: weight of the student loss; `1 - alpha` weighs the distillation loss.
            temperature: T > 0 that softens both models' outputs.
            augmentation: a layer applied to each training batch before both teacher and
                student see it (function matching: the same view for both, on the fly);
                `False` drops a recipe's augmentation.
            recipe: a named method (`keras_kd.recipes.RECIPES`: "hinton", "function_matching",
                "dist", "teacher_assistant") whose loss, alpha, temperature and augmentation
                fill every argument above left as None. Default "hinton" (alpha 0.5,
                T `keras_kd.recipes.DEFAULT_TEMPERATURE`).
            **kwargs: passed on to `keras.Model.compile` (e.g. `jit_compile`, `steps_per_execution`).

        Raises:
            ValueError: `alpha` outside [0, 1], `temperature <= 0`, an unknown loss.
        """
        if kwargs.get("loss") is not None:
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
            augmentation = _deserialize_layer(saved.get("augmentation"))
        defaults = kd_recipes.get(recipe).compile_arguments()
        alpha = defaults["alpha"] if alpha is None else alpha
        temperature = defaults["temperature"] if temperature is None else temperature
        if distillation_loss_fn is None:
            distillation_loss_fn = defaults["distillation_loss_fn"]
        if augmentation is None:
            augmentation = defaults["augmentation"]
        augmentation = augmentation or None
        self.alpha = alpha
        self.temperature = temperature
        self.student_loss_fn = kd_losses.get_student_loss(student_loss_fn)
        self.distillation_loss_fn = kd_losses.get(distillation_loss_fn).with_temperature(self._temperature)
        if augmentation is not None and not callable(augmentation):
            raise TypeError(f"`augmentation` must be a Keras layer or callable; received {augmentation!r}.")
        self.augmentation = augmentation
        self._user_metrics = metrics
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    # The loss ------------------------------------------------------------------------


    def _teacher_outputs(self, x, cached_logits):
        """Teacher logits (one teacher, a weighted ensemble, or the cache) and features."""
        features, first_logits = [], None
        if self._teacher_features is not None:
            outputs = self._teacher_features(x, training=False)
            first_logits, features = outputs[0], list(outputs[1:])
        if cached_logits is not None:
            return ops.stop_gradient(ops.convert_to_tensor(cached_logits)), features
        logits = [
            first_logits if (index == 0 and first_logits is not None) else model(x, training=False)
            for index, model in enumerate(self.teachers)
        ]
        if len(logits) == 1:
            return ops.stop_gradient(logits[0]), [ops.stop_gradient(f) for f in features]
        # Weighted average of the softened distributions, written back as logits at T:
        # softmax(T * log(sum_i w_i softmax(t_i / T)) / T) = sum_i w_i softmax(t_i / T).
        temperature = self._temperature
        log_mix = ops.logsumexp(
            ops.stack([ops.log_softmax(ops.cast(t, "float32") / temperature, axis=-1) + np.log(w)
                       for t, w in zip(logits, self.teacher_weights)], axis=0),
            axis=0,
        )
        return ops.stop_gradient(log_mix * temperature), [ops.stop_gradient(f) for f in features]

    def _student_outputs(self, x, training):
        if self._student_features is None:
            # Through `__call__`, so that tf_keras records the input signature SavedModel needs.
            return self(x, training=training), []
        if IS_TF_KERAS and getattr(self, "_saved_model_inputs_spec", True) is None:
            self._set_save_spec(x)  # what `__call__` would have recorded
        if not IS_TF_KERAS and not self.built:
            self.built = True  # its variables all exist; `__call__` is bypassed for the features
        outputs = self._student_features(x, training=training)
        return outputs[0], list(outputs[1:])

    def _distillation_terms(self, x, y, y_pred, student_features, sample_weight, cached_logits,
                            indices=None, training=True):
        teacher_logits, teacher_features = self._teacher_outputs(x, cached_logits)
        mask = label_mask(y, y_pred) if y is not None else None
        filled_y = fill_missing(y, mask) if y is not None else None
        # Losses that need a target class (DKD) take the teacher's top class on unlabelled rows.
        distillation_loss = self.distillation_loss_fn(
            teacher_logits, y_pred, sample_weight=sample_weight,
            labels=fill_missing(y, mask, fallback=ops.argmax(teacher_logits, axis=-1)) if y is not None else None,
        )
        if y is not None:
            student_loss = self._label_loss(filled_y, y_pred, mask, sample_weight)
        elif self._alpha_value > 0:
            raise ValueError(
                f"The data has no labels, but alpha={self._alpha_value} weighs a loss on labels. "
                "Pass labels (x, y), or compile with alpha=0 to distil from the teacher alone."
            )
        else:
            student_loss = ops.zeros_like(distillation_loss)
        alpha = ops.cast(self._alpha, "float32")
        total = alpha * ops.cast(student_loss, "float32") + (1.0 - alpha) * distillation_loss
        batch_size = ops.shape(y_pred)[0]
        for term, adapter, tracker, t_feat, s_feat in zip(
            self.features, self.adapters, self.feature_loss_trackers, teacher_features, student_features
        ):
            if getattr(term.loss, "needs_indices", False):
                if indices is None:
                    if training:
                        raise ValueError(
                            f"Feature term {term.name!r} ({type(term.loss).__name__}) keeps one memory row "
                            "per training example: pass the inputs as keras_kd.with_indices(x)."
                        )
                    value = ops.zeros(())  # no memory rows to compare with: nothing to report
                else:
                    value = adapter(t_feat, s_feat, indices, training=training)
            else:
                value = term.loss(t_feat, adapter(s_feat),
                                  sample_weight=sample_weight if term.loss.per_sample else None)
            tracker.update_state(value, sample_weight=batch_size)
            total = total + term.weight * value
        regularization = self.student.losses
        if regularization:
            total = total + ops.sum(ops.stack([ops.cast(r, total.dtype) for r in regularization]))
        self.student_loss_tracker.update_state(student_loss, sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(distillation_loss, sample_weight=batch_size)
        return total

    def _label_loss(self, y, y_pred, mask, sample_weight):
        """The student loss averaged over labelled rows only (transfer sets mark the rest missing)."""
        raw = ops.cast(self.student_loss_fn(y, y_pred, sample_weight=masked_weight(mask, sample_weight)), "float32")
        # Keras's mean divides by the batch size; rescale so it is a mean over labelled rows.
        # With every row labelled the factor is exactly 1.
        batch = ops.cast(ops.shape(y_pred)[0], "float32")
        return raw * (batch / ops.maximum(ops.sum(mask), 1.0))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras's metrics on labelled rows only: a missing label weighs nothing."""
        if y is not None:
            mask = label_mask(y, y_pred)
            y = fill_missing(y, mask)
            if sample_weight is not None:
                sample_weight = masked_weight(mask, sample_weight)  # for `weighted_metrics`
            # Unweighted metrics read the Keras mask of the predictions, on every engine.
            y_pred = set_keras_mask(y_pred * 1.0, ops.cast(mask, "bool"))
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The combined loss of one batch; also updates the per-term trackers.

        Keras's default steps on non-TensorFlow backends call this; the TensorFlow steps
        below use the same terms.
        """
        x, cached_logits, indices = unpack(x)
        if y_pred is None or self.features:
            y_pred, student_features = self._student_outputs(x, training)
        else:
            student_features = []
        return self._distillation_terms(x, y, y_pred, student_features, sample_weight, cached_logits,
                                        indices, training)

    # TensorFlow training and evaluation steps -------------------------------------------

    def train_step(self, *args, **kwargs):
        """One step: teacher and student forward on the same (augmented) batch, student gradients."""
        if not is_tensorflow_backed():
            return super().train_step(*args, **kwargs)
        (data,) = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, cached_logits, indices = unpack(x)
        if self.augmentation is not None:
            x = self.augmentation(x, training=True)
        with tf.GradientTape() as tape:
            y_pred, student_features = self._student_outputs(x, training=True)
            loss = self._distillation_terms(x, y, y_pred, student_features, sample_weight, cached_logits,
                                            indices, training=True)
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
        x, cached_logits, indices = unpack(x)
        y_pred, student_features = self._student_outputs(x, training=False)
        loss = self._distillation_terms(x, y, y_pred, student_features, sample_weight, cached_logits,
                                        indices, training=False)
        self._track_total_loss(loss, y_pred)
        return self._metrics_result(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x, _, _ = unpack(x)
        return self.student(x, training=False)

    def _metrics_result(self, x, y, y_pred, sample_weight):
        if y is None:  # Distilling unlabelled data: only the loss terms are defined.
            return {m.name: m.result() for m in self._loss_metrics()}
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _loss_metrics(self):
        total = self._total_loss_tracker if IS_TF_KERAS else self._loss_tracker
        return [total, self.student_loss_tracker, self.distillation_loss_tracker, *self.feature_loss_trackers]

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

    # fit and evaluate: guards against data that would train on nothing, teacher caches --

    def fit(self, x=None, y=None, *args, teacher_cache=None, **kwargs):
        """`keras.Model.fit`, plus `teacher_cache=`: distil from precomputed teacher logits.

        Args:
            teacher_cache: a `TeacherCache` built from these same `x` (checked by size and
                fingerprint); the teachers then do not run during training.
        """
        check_not_empty(x, "x")
        if kwargs.get("validation_data") is not None:
            check_not_empty(kwargs["validation_data"], "validation_data")
        self._check_compiled()
        if teacher_cache is not None:
            x = self._attach_cache(x, teacher_cache)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        check_not_empty(x, "x")
        self._check_compiled()
        return super().evaluate(x, y, *args, **kwargs)

    def _attach_cache(self, x, cache):
        if not isinstance(cache, TeacherCache):
            raise TypeError(f"`teacher_cache` must be a keras_kd.TeacherCache; received {type(cache).__name__}.")
        if self.augmentation is not None:
            raise ValueError(
                "A teacher cache holds the teacher's outputs on the original inputs, but this "
                "distiller augments each batch (function matching): the teacher must see the "
                "augmented view. Drop `augmentation` or `teacher_cache`."
            )
        if self.features:
            raise ValueError("A teacher cache holds logits only; feature terms need the teacher to run.")
        return cache.attach(x, argument="x")

    def _check_compiled(self):
        if self.distillation_loss_fn is None:
            raise RuntimeError(
                "Call `distiller.compile(optimizer=..., alpha=..., temperature=...)` before "
                "`fit` or `evaluate`."
            )

    # Serialization --------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        teachers = [_without_compile_config(keras.layers.serialize(t)) for t in self.teachers]
        config.update(
            {
                "student": _without_compile_config(keras.layers.serialize(self.student)),
                "teacher": teachers[0] if len(teachers) == 1 else teachers,
                "teacher_weights": list(self.teacher_weights) if len(teachers) > 1 else None,
                "features": [term.get_config() for term in self.features] or None,
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
        teacher_config = config.pop("teacher")
        if isinstance(teacher_config, list):
            teacher = [keras.layers.deserialize(t, custom_objects=custom_objects) for t in teacher_config]
        else:
            teacher = keras.layers.deserialize(teacher_config, custom_objects=custom_objects)
        features = [FeatureDistillation.from_config(f) for f in (config.pop("features", None) or [])]
        saved_compile_config = config.pop("compile_config", None)
        distiller = cls(student=student, teacher=teacher, features=features or None, **config)
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
            "augmentation": keras.layers.serialize(self.augmentation) if self.augmentation is not None else None,
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
            augmentation=_deserialize_layer(config.get("augmentation")),
        )
        # Create the optimizer's slots (the student's variables exist already) so that a
        # saved optimizer state can load into them.
        self.optimizer.build(self.trainable_variables)


def _deserialize_layer(config):
    return keras.layers.deserialize(config) if config is not None else None


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
