"""`Distiller`: a Keras model that trains a student on frozen teachers' soft targets and features.

The whole loss is computed in `compute_loss`, which Keras's own train and test steps call
on every backend (TensorFlow, JAX, PyTorch); what tf_keras alone needs is the
`TfKerasSteps` mixin of `keras_kd.tf_keras_steps`, beside this module and used by it alone.
"""

import os

from keras_kd import backend, keras_compat, saving
from keras_kd import losses as kd_losses
from keras_kd.backend import IS_TF_KERAS, keras, ops, register_serializable
from keras_kd.checks import checked_teachers, normalized_teacher_weights, validate_alpha, validate_temperature
from keras_kd.data import tokens
from keras_kd.data.checks import check_data, check_fit_arguments, numerics_errors
from keras_kd.data.keys import has_own_inputs, split_inputs, unpack
from keras_kd.data.transfer import fill_missing, labelled_mean, masked_weight
from keras_kd.features import FeatureDistillation, feature_extractors
from keras_kd.metrics import split_teacher_metrics
from keras_kd.teacher.attach import attach_teacher_cache, cached_teacher_logits
from keras_kd.teacher.default import keep_teacher_outputs
from keras_kd.teacher.precision import TeacherPass, validate_teacher_dtype
from keras_kd.training import chunked_loss
from keras_kd.training import recipes as kd_recipes

if IS_TF_KERAS:
    from keras_kd.tf_keras_steps import TfKerasSteps as EngineSteps
else:

    class EngineSteps:
        """Keras 3 runs the Distiller with its own train, test and predict steps on every backend."""


@register_serializable("Distiller")
class Distiller(EngineSteps, keras.Model):
    """Trains `student` to match `teacher`'s temperature-softened outputs and the labels.

    The loss:

        loss = alpha * student_loss(y, s) + (1 - alpha) * distillation_loss(t, s)
               + sum_k weight_k * feature_loss_k(teacher features_k, student features_k)
        distillation_loss(t, s) = T^2 * KL(softmax(t / T) || softmax(s / T))  (default)

    The teachers are frozen (`trainable = False`) and always run with `training=False`; only the student's
    trainable weights (and feature adapters) get gradients. `predict` and `call` return the student's logits,
    and `evaluate` reports the same terms as `fit`: `loss` (the total), `student_loss`, `distillation_loss`,
    one `<name>_loss` per feature term, and the compiled metrics on the student's output. Under a
    `tf.distribute` strategy the loss is scaled per replica as Keras scales its own.

    Code written for Keras's own `keras.distillation.Distiller` runs unchanged: its call
    `Distiller(teacher=..., student=..., distillation_losses=..., distillation_loss_weights=...,
    student_loss_weight=0.5)` is taken as Keras takes it (positional arguments then in Keras's
    order, teacher first), with Keras's `LogitsDistillation` and `FeatureDistillation` objects
    (`keras_kd.keras_compat`); it logs `total_loss` as Keras's does. Keras's default
    `LogitsDistillation()` loss is computed as Hinton's loss here (softmax at T, T^2), said once
    in a `KerasDifferenceWarning`.

    Args:
        student: the model to train; a Keras model of the active engine that outputs logits.
        teacher: the trained model to learn from (same engine, same output shape), or a
            list of them: their soft targets are averaged (`teacher_weights`) at temperature T.
        teacher_weights: weights of several teachers' soft targets; equal by default.
        features: `FeatureDistillation` terms between named teacher and student layers (of the first teacher).
        teacher_dtype: `"bfloat16"` runs an inference copy of the teachers in bfloat16 (cheaper
            where the hardware has it; the loss stays float32): `keras_kd.teacher.precision`.
        distillation_losses: (Keras's) one distillation loss or a list: `keras.distillation`'s
            `LogitsDistillation` and `FeatureDistillation`, keras-kd's losses or feature terms.
        distillation_loss_weights: (Keras's) a weight per distillation loss; 1 each by default.
        student_loss_weight: (Keras's) the weight of the loss on labels, keras-kd's `alpha`; 0.5 by default.

    Raises:
        ValueError: a model that is not a Keras model of the active engine (`NotAModelError`, also a
            `TypeError`), output shapes that differ, a model that ends in softmax, a layer name that
            does not exist, feature shapes that no adapter can reconcile, loss weights of another length.
        TypeError: a subclassed model where features are asked of it.

    Example:
        >>> distiller = Distiller(student=student, teacher=teacher)
        >>> distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=3.0)
        >>> distiller.fit(x_train, y_train, epochs=3)
        >>> distiller.student.save("student.keras")

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """

    def __init__(self, *args, **kwargs):
        # Keras's own call, Distiller(teacher=..., student=..., distillation_losses=..., ...), or keras-kd's.
        arguments, keras_style = keras_compat.bind(args, kwargs)
        student, teacher = arguments.pop("student"), arguments.pop("teacher")
        teacher_weights, features = arguments.pop("teacher_weights", None), arguments.pop("features", None)
        teacher_dtype = arguments.pop("teacher_dtype", None)
        keras_arguments = {name: arguments.pop(name, None) for name in keras_compat.KERAS_ONLY}
        super().__init__(**arguments)
        teachers = checked_teachers(student, teacher)  # LMs' vocabularies: checked against the loss at compile
        for model in teachers:
            model.trainable = False
        self.student = student
        self.teachers = teachers
        self.teacher_weights = normalized_teacher_weights(teacher_weights, len(teachers))
        self._keras_arguments = self._compile_defaults = None
        if keras_style:
            features = list(features or []) + self._take_keras_arguments(**keras_arguments)
        self.features = [FeatureDistillation.coerce(term) for term in (features or [])]
        self._teacher_features, self._student_features = feature_extractors(self.teacher, student, self.features)
        self.teacher_dtype = validate_teacher_dtype(teacher_dtype, has_features=bool(self.features))
        self._teacher_pass = TeacherPass(teachers, self.teacher_dtype)  # a plain object: not tracked, not saved
        # Alpha and temperature live in variables, so schedules change them without retracing.
        self._alpha_value, self._temperature_value = 0.5, kd_recipes.DEFAULT_TEMPERATURE
        self._alpha = backend.scalar_variable(self._alpha_value, "alpha")
        self._temperature = backend.scalar_variable(self._temperature_value, "temperature")
        # The first training step whose loss or inputs were not finite (-1: none), recorded in the
        # step itself, so that `StopOnNonFiniteLoss` reads it now and then instead of every batch.
        self._steps_trained = backend.counter_variable(0, "steps_trained")
        self._first_nonfinite_step = backend.counter_variable(-1, "first_nonfinite_step")
        for name, value in (self._compile_defaults or {}).items():
            if name in ("alpha", "temperature") and value is not None:
                setattr(self, name, value)  # Keras's students_loss_weight reads right before compile
        self.student_loss_fn = self.distillation_loss_fn = self.augmentation = self.on_policy = None
        self._loss_layer = None  # a loss's own trained weights (CTKD's temperature)
        self._shared_vocabulary = None  # set by compile: `tokens.shared_vocabulary`
        self._loss_chunk_size = None  # set by compile: positions per chunk of the student's logits
        self._saved_compile_config = None
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")  # the name Keras's Distiller logs
        self.feature_loss_trackers = [keras.metrics.Mean(name=f"{term.name}_loss") for term in self.features]
        self.teacher_metrics = []
        self.built = True  # its models exist; an augmentation layer builds on its first batch

    def _take_keras_arguments(self, distillation_losses, distillation_loss_weights, student_loss_weight):
        """Keras's constructor arguments as keras-kd's: the compile defaults they set, and the feature terms.

        As in Keras's Distiller, the feature terms count inside the distillation loss:
        total = w * student_loss + (1 - w) * sum_i weight_i * loss_i.
        """
        student_loss_weight = 0.5 if student_loss_weight is None else student_loss_weight
        student_loss_weight = keras_compat.check_student_loss_weight(student_loss_weight)
        translation = keras_compat.translate(distillation_losses, distillation_loss_weights)
        losses = distillation_losses if isinstance(distillation_losses, (list, tuple)) else [distillation_losses]
        weights = [1.0] * len(losses) if distillation_loss_weights is None else list(distillation_loss_weights)
        # Plain objects, not tracked as the Distiller's layers (the feature terms are, in `features`).
        self._keras_arguments = keras_compat.KerasArguments(list(losses), [float(w) for w in weights])
        self._compile_defaults = {
            "alpha": student_loss_weight,
            "temperature": translation.temperature,
            "distillation_loss_fn": translation.response,
        }
        return translation.features

    @property
    def teacher(self):
        """The (first) teacher."""
        return self.teachers[0]

    @property
    def adapters(self):
        """Each feature term's adapter (or CRD head), trained with the student."""
        return [term.adapter_layer for term in self.features]

    # The attributes Keras's own Distiller has.
    @property
    def distillation_losses(self):
        """The distillation losses: as given to a Keras-style constructor, else the compiled response
        loss and the feature terms."""
        if self._keras_arguments is not None:
            return list(self._keras_arguments.losses)
        return [loss for loss in [self.distillation_loss_fn] if loss is not None] + list(self.features)

    @property
    def distillation_loss_weights(self):
        if self._keras_arguments is not None:
            return list(self._keras_arguments.weights)
        return [1.0] * len(self.distillation_losses)

    @property
    def student_loss_weight(self):
        """Keras's name for `alpha`, the weight of the loss on labels."""
        return self.alpha

    @student_loss_weight.setter
    def student_loss_weight(self, value):
        self.alpha = value

    # Python mirrors of the variables: readable inside a traced step on every backend.
    @property
    def alpha(self):
        return self._alpha_value

    @alpha.setter
    def alpha(self, value):
        self._alpha_value = validate_alpha(value)
        self._alpha.assign(self._alpha_value)

    @property
    def temperature(self):
        return self._temperature_value

    @temperature.setter
    def temperature(self, value):
        validate_temperature(value, "temperature")
        self._temperature_value = float(value)
        self._temperature.assign(self._temperature_value)

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
        loss_chunk_size=None,
        on_policy=None,
        **kwargs,
    ):
        """Configure training, with the arguments of the Keras distillation example.

        Args:
            optimizer: optimizer for the student's weights.
            metrics: metrics of the student's predictions against the labels, and of its agreement
                with the teacher (`keras_kd.metrics.TeacherAgreement`, `TeacherKL`, or their names).
            loss: Keras's name for `student_loss_fn` (as `keras.distillation.Distiller.compile` takes it).
            student_loss_fn: loss on labels; default cross-entropy from logits (sparse or one-hot labels),
                averaged over the labelled rows of each batch. A Keras cross-entropy must have `from_logits=True`.
            distillation_loss_fn: a keras-kd loss, a name (`"kd"`, `"dkd"`, `"dist"`, ...), or a Keras
                probability loss such as `keras.losses.KLDivergence()`, which is applied to `softmax(logits / T)`
                and scaled by T^2 as in the Keras example (KL in log space: exact for extreme logits).
            alpha: weight of the student loss; `1 - alpha` weighs the distillation loss.
            temperature: T > 0 that softens both models' outputs.
            augmentation: a layer applied to each training batch before both teacher and student see it
                (function matching: the same view for both, on the fly); `False` drops a recipe's augmentation.
            recipe: a named method (`keras_kd.recipes.RECIPES`: "hinton", "function_matching", "dist")
                whose loss, alpha, temperature and augmentation fill every argument above left as None.
                Default "hinton" (alpha 0.5, T `keras_kd.recipes.DEFAULT_TEMPERATURE`). "teacher_assistant"
                needs a third model and is refused here with the two steps that do it (the command line
                trains it).
            loss_chunk_size: for a keras-hub causal LM student, the positions whose logits a training
                step computes at once (`keras_kd.training.chunked_loss`): the step never holds the student's
                `(batch, time, vocabulary)` logits, and its losses equal the whole-sequence ones.
                None (default): the whole sequence at once.
            on_policy: a `keras_kd.OnPolicy`: in every training step the student writes part of
                the batch (GKD's on-policy data, from that step's weights), which the teacher scores.
            **kwargs: passed on to `keras.Model.compile` (e.g. `jit_compile`, `steps_per_execution`).

        Raises:
            ValueError: `alpha` outside [0, 1], `temperature <= 0`, an unknown loss.
        """
        loss = kwargs.pop("loss", None)
        if loss is not None and student_loss_fn is not None:
            raise ValueError("Give the loss on labels once: `loss` (Keras's name) or `student_loss_fn`, not both.")
        student_loss_fn = loss if loss is not None else student_loss_fn
        if self._keras_arguments is not None:
            keras_compat.say_label_loss_difference(student_loss_fn)
        chosen = kd_recipes.get(recipe)
        if chosen.assistant:
            raise ValueError(
                f"recipe={recipe!r} distils through a teacher assistant, a third model that one Distiller cannot "
                "train: distil the assistant from the teacher (Distiller(student=assistant, teacher=teacher)), then "
                "the student from the assistant (Distiller(student=student, teacher=assistant)), each with "
                "recipe='hinton'; or run `keras-kd distill --recipe=teacher_assistant`, which builds and trains it."
            )
        defaults = chosen.compile_arguments()
        # A Keras-style constructor's losses, weight and temperature come before the recipe's defaults.
        defaults.update({k: v for k, v in (self._compile_defaults or {}).items() if v is not None})
        self.alpha = defaults["alpha"] if alpha is None else alpha
        self.temperature = defaults["temperature"] if temperature is None else temperature
        self.student_loss_fn = kd_losses.get_student_loss(student_loss_fn)
        self.distillation_loss_fn = kd_losses.get(distillation_loss_fn or defaults["distillation_loss_fn"])
        loss_layer = getattr(self.distillation_loss_fn, "trainable_layer", None)
        backend.untrack(self, self._loss_layer, kept=loss_layer)
        self._loss_layer = loss_layer  # tracked: trained with the student, saved with the Distiller
        previous = self.augmentation
        self.augmentation = kd_recipes.checked_augmentation(augmentation, defaults["augmentation"])
        backend.untrack(self, previous, kept=self.augmentation)  # a replaced augmentation's seed leaves the state
        # LMs of two vocabularies: what the loss compares (all ids, the shared ones, or sorted by ULD)
        self._shared_vocabulary = tokens.shared_vocabulary(self.student, self.teachers, self.distillation_loss_fn)
        self._user_metrics = metrics
        label_metrics, teacher_metrics = split_teacher_metrics(metrics)
        if teacher_metrics and tokens.vocabulary_size(self.student) != tokens.vocabulary_size(self.teacher):
            raise ValueError(
                "Metrics of agreement with the teacher compare the two models' token ids, but their vocabularies "
                "differ: drop teacher_agreement / teacher_kl from `metrics`."
            )
        for metric in self.teacher_metrics:
            backend.untrack(self, metric)
        self.teacher_metrics = teacher_metrics  # agreement with the teacher: updated in `compute_loss`
        chunked_loss.check_supported(self, loss_chunk_size, metrics)
        self._loss_chunk_size = loss_chunk_size
        if on_policy is not None:
            on_policy.check(self.student, self.augmentation, self.features)
        backend.untrack(self, self.on_policy, kept=on_policy)
        self.on_policy = on_policy  # tracked: its random state is the Distiller's
        super().compile(optimizer=optimizer, metrics=label_metrics, **kwargs)

    def call(self, inputs, training=None, augment=True):
        """The student's logits; while training with augmentation, feature terms or `on_policy`, a
        dict of the logits, the inputs the student saw, its features and the rewrite of the batch,
        which `compute_loss` reuses: one forward pass a step, so BatchNorm statistics update once,
        on the augmented view."""
        x, cached_logits, _ = unpack(inputs)
        x = split_inputs(x)[0]
        rewrite = None
        if training and self.on_policy is not None:  # the student writes part of the batch first
            x, rewrite = self.on_policy.rewrite(self.student, x)
        if training and self._loss_chunk_size:  # the logits come chunk by chunk in `compute_loss`
            out = {"hidden": self.student.backbone(x, training=training), "inputs": x}
        elif not (training and (self.augmentation is not None or self._student_features is not None or rewrite)):
            return self.student(x, training=training)
        else:
            logits, x, features = self._student_pass(x, training, augment and cached_logits is None)
            out = {"logits": logits, "inputs": x, "features": features}
        if rewrite is not None:
            out["on_policy"] = rewrite
        return out

    def _student_pass(self, x, training, augment):
        """`(logits, the inputs the student saw, its features)` from one forward pass."""
        if training and augment and self.augmentation is not None:
            x = self.augmentation(x, training=True)
        if self._student_features is None:
            return self.student(x, training=training), x, []
        logits, *features = self._student_features(x, training=training)
        return logits, x, features

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The combined loss of one batch; also updates the per-term trackers.

        The teacher's (or the cache's) logits are computed here, and the student's forward
        pass too unless `call` made it, so every backend trains the same way.
        """
        x, cached_logits, indices = unpack(x)
        x, y, sample_weight = self._rewritten_batch(x, y, y_pred, sample_weight)
        x, teacher_x = split_inputs(x)
        own_inputs = teacher_x is not x  # each model its own inputs (two tokenizers)
        if isinstance(y_pred, dict) and "hidden" in y_pred:  # `compile(loss_chunk_size=...)`'s training pass
            if own_inputs:
                raise ValueError("loss_chunk_size compares the models token by token: give both the same inputs.")
            bucket = isinstance(cached_logits, dict) and cached_logits["tail"] == "bucket"
            self._check_what_is_compared(False, bucket, True)
            student_loss, distillation_loss = chunked_loss.losses(
                self, x, y, y_pred["hidden"], sample_weight, cached_logits, teacher_x
            )
            if student_loss is None:
                student_loss = self._label_loss(y, None, None, None, like=distillation_loss)
            return self._total(student_loss, distillation_loss, ops.zeros((), "float32"), x, y_pred["hidden"], training)
        student_features = []
        if isinstance(y_pred, dict):  # `call`'s training pass
            y_pred, x, student_features = y_pred["logits"], y_pred["inputs"], y_pred["features"]
        elif y_pred is None or self._student_features is not None or (training and self.augmentation is not None):
            # cached views (an augmented teacher cache) are augmented already
            y_pred, x, student_features = self._student_pass(x, training, augment=cached_logits is None)
        bucket = isinstance(cached_logits, dict) and cached_logits["tail"] == "bucket"
        self._check_what_is_compared(own_inputs, bucket, tokens.is_sequence(y_pred))
        sample_weight, mask = tokens.token_weights(x, y, y_pred, sample_weight)  # sequences: a weight per token
        # `distilled`: the student's logits as the loss compares them (a tail-bucket cache's k + 1 classes).
        teacher_logits, distilled, teacher_features = self._teacher_outputs(
            teacher_x if own_inputs else x, cached_logits, y_pred
        )
        distilled_weight = sample_weight
        if own_inputs:  # two tokenizers: position i of one against position i of the other
            teacher_logits, distilled, distilled_weight = tokens.align_positions(
                teacher_logits, distilled, sample_weight, teacher_x
            )
        if self._shared_vocabulary:  # one tokenizer, padding rows in one model: the ids both have
            teacher_logits = teacher_logits[..., : self._shared_vocabulary]
            distilled = distilled[..., : self._shared_vocabulary]
        # Losses that need a target class (DKD) take the teacher's top class on unlabelled rows
        # (positions of two tokenizers do not line up with the student's labels: none then).
        labels = None
        if y is not None and not own_inputs:
            labels = fill_missing(y, mask, fallback=ops.argmax(teacher_logits, axis=-1))
        distillation_loss = self.distillation_loss_fn(
            teacher_logits, distilled, sample_weight=distilled_weight, temperature=self._temperature, labels=labels
        )
        student_loss = self._label_loss(y, y_pred, mask, sample_weight, like=distillation_loss)
        batch_size = ops.shape(y_pred)[0]
        feature_total = ops.zeros((), dtype="float32")
        for term, tracker, t, s in zip(self.features, self.feature_loss_trackers, teacher_features, student_features):
            value = term.call(t, s, indices=indices, sample_weight=sample_weight, training=training)
            tracker.update_state(value, sample_weight=batch_size)
            feature_total = feature_total + term.weight * ops.cast(value, "float32")
        for metric in self.teacher_metrics:
            metric.update_state(teacher_logits, distilled, sample_weight=distilled_weight)
        return self._total(student_loss, distillation_loss, feature_total, x, y_pred, training)

    def _rewritten_batch(self, x, y, y_pred, sample_weight):
        """`(x, y, sample_weight)` of the batch that trained: as given, or as `on_policy` rewrote it."""
        if not (isinstance(y_pred, dict) and "on_policy" in y_pred):
            return x, y, sample_weight
        inputs, packed, _ = unpack(x)
        self.on_policy.check_inputs(split_inputs(inputs)[0], has_own_inputs(inputs), packed is not None)  # datasets
        x = y_pred["inputs"]
        return (x, *self.on_policy.labels(y_pred["on_policy"], y, sample_weight, x))

    def _total(self, student_loss, distillation_loss, feature_total, x, y_pred, training):
        """`alpha * student loss + (1 - alpha) * distillation loss` (+ feature terms, the student's
        regularization), each term's tracker updated; scaled for the replicas of a strategy."""
        alpha = ops.cast(self._alpha, "float32")
        batch_size = ops.shape(y_pred)[0]
        if self._keras_arguments is not None:  # Keras's Distiller: feature terms inside the (1 - w) part
            distillation_loss = distillation_loss + feature_total
            total = alpha * student_loss + (1.0 - alpha) * distillation_loss
        else:
            total = alpha * student_loss + (1.0 - alpha) * distillation_loss + feature_total
        # JAX hands the forward pass's losses (activity regularizers) over through `_losses_override`.
        regularization = getattr(self, "_losses_override", None) or self.student.losses
        if regularization:
            total = total + ops.sum(ops.stack([ops.cast(r, "float32") for r in regularization]))
        self.student_loss_tracker.update_state(student_loss, sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(distillation_loss, sample_weight=batch_size)
        self.total_loss_tracker.update_state(total, sample_weight=batch_size)
        if training:
            self._note_finite(total, x)
        return backend.scale_loss_for_replicas(total)

    def _check_what_is_compared(self, own_inputs, bucket, sequences):
        """Refuse what would compare the wrong things without an error: before `fit` or `evaluate`
        starts where the data say it (an error inside a step leaves JAX's variables purged), and
        again as the step is traced (datasets)."""
        loss = self.distillation_loss_fn
        if own_inputs:
            if self.features or self.augmentation is not None:
                raise ValueError(
                    "Each model reads inputs of its own ('student_inputs', 'teacher_inputs'): feature terms and "
                    "augmentation need both models to read the same inputs."
                )
            if sequences and not getattr(loss, "across_vocabularies", False):
                raise ValueError(
                    f"Token ids of two tokenizers ('student_inputs', 'teacher_inputs') name different tokens, but "
                    f"{type(loss).__name__} compares the distributions id by id: distil with "
                    "distillation_loss_fn='uld', or give both models the same inputs."
                )
        if bucket:
            if getattr(loss, "needs_labels", False) or self.teacher_metrics:
                what = f"{type(loss).__name__}" if getattr(loss, "needs_labels", False) else "teacher metrics"
                raise ValueError(
                    f"{what} compare token ids over the whole vocabulary, but a top-k cache with tail='bucket' "
                    "hands the teacher's k tokens and one class for the rest. Build the cache with "
                    "tail='spread', or distil with a divergence (kd, forward_kl, reverse_kl, generalized_jsd, ...) "
                    "and no teacher metrics."
                )

    def _note_finite(self, total, x):
        """Record the step number in `_first_nonfinite_step` the first time the loss or a float input
        is NaN or infinite (in the step: no host synchronisation)."""
        checks = [ops.all(ops.isfinite(total))]
        for leaf in backend.float_leaves(x):
            checks.append(ops.all(ops.isfinite(leaf)))
        bad = 1 - ops.cast(ops.all(ops.stack(checks)), "int32")
        step = ops.convert_to_tensor(self._steps_trained)
        first = ops.convert_to_tensor(self._first_nonfinite_step)
        record = bad * ops.cast(ops.equal(first, -1), "int32")
        self._first_nonfinite_step.assign(first + record * (step - first))
        self._steps_trained.assign(step + 1)

    def _teacher_outputs(self, x, cached_logits, student_logits):
        """`(teacher logits, student logits for the loss, teacher features)`: one teacher's logits, the
        cache's, or several teachers' mixture as logits at T; the student's as given but for a top-k
        cache with a tail bucket (both models' k + 1 classes)."""
        if cached_logits is not None:  # a top-k cache's distribution is rebuilt here, on the device
            teacher_logits, student_logits = cached_teacher_logits(cached_logits, student_logits)
            return ops.stop_gradient(teacher_logits), student_logits, []
        features = []
        if self._teacher_features is not None:  # the first teacher's logits come with its features
            first, *features = [ops.stop_gradient(f) for f in self._teacher_features(x, training=False)]
        logits = [first if (i == 0 and features) else self._teacher_pass(i, x) for i in range(len(self.teachers))]
        if len(logits) > 1:
            logits = [kd_losses.mixture_logits(logits, self.teacher_weights, self._temperature)]
        return ops.stop_gradient(logits[0]), student_logits, features

    def _label_loss(self, y, y_pred, mask, sample_weight, like):
        """The student loss averaged over labelled rows only (transfer sets mark the rest missing)."""
        if y is None:
            if self.alpha > 0:
                raise ValueError(
                    f"The data has no labels, but alpha={self.alpha} weighs a loss on labels. Pass "
                    "labels (x, y), or compile with alpha=0 to distil from the teacher alone."
                )
            return ops.zeros_like(like)
        return labelled_mean(self.student_loss_fn, y, y_pred, mask, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras's metrics on labelled rows only; unlabelled data reports the loss terms alone."""
        x, y, sample_weight = self._rewritten_batch(x, y, y_pred, sample_weight)
        if y is None:
            return self.get_metrics_result()
        if isinstance(y_pred, dict) and "hidden" in y_pred:  # the chunked step: no whole logits, no metrics
            return self.get_metrics_result()
        y_pred = y_pred["logits"] if isinstance(y_pred, dict) else y_pred  # `call`'s training pass
        sample_weight, mask = tokens.token_weights(split_inputs(unpack(x)[0])[0], y, y_pred, sample_weight)
        sample_weight = None if sample_weight is None else masked_weight(mask, sample_weight)  # weighted_metrics
        # Unweighted metrics read the Keras mask of the predictions, on every engine.
        y_pred = backend.set_keras_mask(y_pred * 1.0, ops.cast(mask, "bool"))
        return super().compute_metrics(x, fill_missing(y, mask), y_pred, sample_weight=sample_weight)

    @property
    def metrics(self):
        # Unlabelled data (alpha=0) never builds Keras 3's label metrics; leave them out.
        compile_metrics = getattr(self, "_compile_metrics", None)
        return [m for m in super().metrics if not (m is compile_metrics and not m.built)]

    def fit(
        self, x=None, y=None, *args, teacher_cache=None, check_numerics=False, teacher_cache_max_bytes=None, **kwargs
    ):
        """`keras.Model.fit`, with the teacher paid once where it can be (`keras_kd.teacher.default`).

        Args:
            teacher_cache: `None` (default): the teacher's logits are computed once and reused in
                every epoch when `x` (and `validation_data`) are in-memory arrays and nothing makes
                the teacher's output change between epochs; `False`: the teacher runs on every step;
                a `TeacherCache` of these same `x` (checked by size and fingerprint) or an
                `AugmentedTeacherCache` (its stored views replace `augmentation`).
            check_numerics: NaN checks on every batch before it trains (`keras_kd.data.checks`).
            teacher_cache_max_bytes: the most memory the logits kept by default may take.
        """
        x, kwargs = check_fit_arguments(self, x, y, kwargs, check_numerics, teacher_cache)
        self._check_compiled()
        self._check_data_before_training(x, cache=teacher_cache)
        if self.on_policy is not None:
            inputs, packed, _ = unpack(x)
            cached = packed is not None or teacher_cache not in (None, False)
            self.on_policy.check_inputs(split_inputs(inputs)[0], has_own_inputs(inputs), cached)
        self._new_steps_for_labels_of_another_rank(y)
        if hasattr(self.distillation_loss_fn, "on_epoch_begin"):  # a loss with a curriculum (CTKD)
            from keras_kd.training.callbacks import LossCurriculum

            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), LossCurriculum()]
        with numerics_errors():
            self._teacher_pass.sync(self)
            if teacher_cache is None:
                x, kwargs = keep_teacher_outputs(self, x, kwargs, teacher_cache_max_bytes)
            elif teacher_cache is not False:
                x, y, kwargs = attach_teacher_cache(self, x, y, teacher_cache, kwargs)
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        check_data(self, x, y, kwargs.get("sample_weight"))
        self._check_compiled()
        self._check_data_before_training(x)
        self._new_steps_for_labels_of_another_rank(y)
        self._teacher_pass.sync(self)
        return super().evaluate(x, y, *args, **kwargs)

    def _check_data_before_training(self, x, cache=None):
        """`_check_what_is_compared` on what the arguments show: inputs of two tokenizers, a tail bucket
        (a cache given to `fit`, or one already packed into `x`)."""
        inputs, packed, _ = unpack(x)
        student_x, teacher_x = split_inputs(inputs)
        bucket = getattr(cache, "tail", None) == "bucket" or (isinstance(packed, dict) and packed["tail"] == "bucket")
        self._check_what_is_compared(student_x is not teacher_x, bucket, tokens.is_language_model(self.student))

    def _new_steps_for_labels_of_another_rank(self, y):
        """Trace the steps afresh when array labels change form (class indices, one-hot rows): the loss
        reads the form from the labels' rank, which a retraced TensorFlow step would relax to unknown."""
        rank = None if y is None or not hasattr(y, "shape") else len(y.shape)
        if rank is not None and rank != getattr(self, "_label_rank", rank):
            self.train_function = self.test_function = None
        if rank is not None:
            self._label_rank = rank

    def _check_compiled(self):
        backend.check_strategy_supported(getattr(self, "_distribute_strategy", None))
        if self.distillation_loss_fn is None:
            raise RuntimeError("Call `distiller.compile(...)` before `fit` or `evaluate`.")

    if not backend.IS_TF_KERAS and keras.backend.backend() == "torch":  # tf_keras has a method of this name

        def _track_variables(self):
            # The torch backend's parameter registration (Keras's TorchLayer), keyed so that a teacher and a
            # student with the same variable paths both stay registered (`backend.track_torch_variables`).
            backend.track_torch_variables(self)

    # Serialization (keras_kd/saving.py) -------------------------------------------------
    def get_config(self):
        return {**super().get_config(), **saving.distiller_config(self)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        arguments, saved_compile_config = saving.distiller_arguments(config, custom_objects)
        distiller = cls(**arguments)
        distiller._saved_compile_config = saved_compile_config  # tf_keras SavedModels carry it
        return distiller

    def get_compile_config(self):
        if self.distillation_loss_fn is None:
            return super().get_compile_config()
        return saving.compile_config(self)

    def compile_from_config(self, config):
        self.compile(**saving.compile_arguments(config))
        # Create the optimizer's slots (the student's variables exist already) so that a
        # saved optimizer state can load into them.
        self.optimizer.build(self.trainable_variables)


def load_distiller(path: "str | os.PathLike", custom_objects: "dict | None" = None):
    """Load a `Distiller` (or any model) saved with `.save(path)`, ready to resume training.

    Args:
        path: a `.keras` file, or (tf_keras) a SavedModel folder.
        custom_objects: classes the teacher or student need, as for `load_model`.

    Returns:
        The loaded model, compiled as it was saved.
    """
    model = keras.models.load_model(path, custom_objects=custom_objects)
    checkpoint_prefix = os.path.join(path, "variables", "variables")
    if IS_TF_KERAS and os.path.isdir(path) and getattr(model, "optimizer", None) is not None:
        import tensorflow as tf

        model.optimizer.build(model.trainable_variables)
        tf.train.Checkpoint(root=model).read(checkpoint_prefix).expect_partial()
    return model
