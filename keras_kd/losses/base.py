"""The base class of keras-kd's distillation losses.

A distillation loss is a Keras `Loss` whose first argument holds the teacher's outputs
(logits, or features) and whose second holds the student's, so it serializes with
`get_config` and can be passed wherever Keras takes a loss. Beyond Keras's signature it
accepts `labels=` (DKD needs the class of each sample) and reduces with Keras's names.
Temperature-based losses keep `temperature=None` to mean "the one passed at call time":
the Distiller passes its own to every call, so the temperature has one home.
"""

from keras_kd.backend import IS_TF_KERAS, get_keras_mask, keras, ops, register_serializable
from keras_kd.checks import validate_temperature
from keras_kd.data.tokens import reduce_positions
from keras_kd.registry import Registry

REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "none")

# Every distillation loss by its class name and its short names ("kd", "dkd", ...).
LOSSES = Registry("distillation loss", "distillation losses")


def register_loss(*aliases):
    """Class decorator: serializable under package keras_kd, and in `LOSSES` by class name and `aliases`."""

    def decorator(cls):
        register_serializable(cls.__name__)(cls)
        return LOSSES.register(cls.__name__, *aliases)(cls)

    return decorator


def init_keras_loss(parent, reduction, name, kwargs):
    """Call `keras.losses.Loss.__init__` through `parent` with what the active engine accepts."""
    if IS_TF_KERAS:
        kwargs.pop("dtype", None)  # Keras 3 configs carry it; tf_keras losses have none.
    parent.__init__(reduction=reduction, name=name, **kwargs)


def as_float32(*tensors):
    """Losses are computed in float32, also under mixed precision."""
    return tuple(ops.cast(ops.convert_to_tensor(t), "float32") for t in tensors)


def mixture_logits(logits, weights, temperature):
    """Several teachers' logits as one: the weighted mean of their softened distributions, as logits at T.

    softmax(mixture / T) = sum_i w_i softmax(t_i / T), computed in log space.
    """
    log_mix = ops.logsumexp(
        ops.stack(
            [
                ops.log_softmax(ops.cast(t, "float32") / temperature, axis=-1) + ops.log(w)
                for t, w in zip(logits, weights)
            ]
        ),
        axis=0,
    )
    return log_mix * temperature


def standardize_logits(logits):
    """Each row of logits as z-scores: `(z - mean) / (1e-7 + std)` over the classes, with the sample
    standard deviation, as Sun et al.'s code computes it (torch's `std`). A constant row becomes
    zeros; its gradient stays finite (the variance is floored at 1e-24 under the square root)."""
    logits = ops.cast(ops.convert_to_tensor(logits), "float32")
    classes = logits.shape[-1]
    centred = logits - ops.mean(logits, axis=-1, keepdims=True)
    variance = ops.sum(ops.square(centred), axis=-1, keepdims=True) / max(classes - 1, 1)
    return centred / (1e-7 + ops.sqrt(ops.maximum(variance, 1e-24)))


def reduce_values(values, sample_weight, reduction):
    """Weigh per-sample `values` by `sample_weight` and reduce them as Keras does.

    Per-sample values `(batch,)` average over the batch (Keras's `sum_over_batch_size`);
    per-position values `(batch, time, ...)` (sequence logits) over the real tokens, those
    whose weight is not 0 (`keras_kd.data.tokens.reduce_positions`).
    """
    return reduce_positions(values, sample_weight, reduction, over_real_tokens=len(values.shape) > 1)


class DistillationLoss(keras.losses.Loss):
    """A Keras loss of (teacher outputs, student outputs), possibly tempered.

    Subclasses name their pure function `fn(teacher, student[, labels], **fn_kwargs())`,
    as Keras's `LossFunctionWrapper` does, returning one value per sample, or set
    `per_sample = False` and return one value for the batch (relational losses such as RKD
    compare samples with each other and cannot weigh them apart).

    Args:
        temperature: softening temperature, or `None` to take the Distiller's
            (1.0 when the loss is called on its own).
        logit_standardization: z-score each row of both models' logits before the loss
            (`standardize_logits`; Sun et al., CVPR 2024), so that the student matches the
            teacher's logit relations rather than their range. Response losses only.
        reduction: `"sum_over_batch_size"` (default; `"mean"` and tf_keras's `"auto"` are
            the same), `"sum"` or `"none"`.
        name: the loss name.
    """

    uses_temperature = True
    needs_labels = False
    across_vocabularies = False  # True: compares teacher and student outputs of different vocabularies (ULD)
    per_sample = True
    # Constructor arguments that `fn` takes and `get_config` saves: each is named here once.
    hyperparameters = ()

    def __init__(
        self, temperature=None, reduction="sum_over_batch_size", name=None, logit_standardization=False, **kwargs
    ):
        reduction = "sum_over_batch_size" if reduction in (None, "auto") else reduction
        if reduction not in REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {REDUCTIONS}; received {reduction!r}.")
        # Keras's own reduction is bypassed: `__call__` below reduces with `kd_reduction`.
        init_keras_loss(super(), "none", name, kwargs)
        self.kd_reduction = reduction
        if temperature is not None:
            validate_temperature(temperature, "temperature")
        self.temperature = temperature
        self.logit_standardization = bool(logit_standardization)

    def fn_kwargs(self, temperature):
        """Keyword arguments of `fn` besides the tensors: the hyper-parameters and the temperature."""
        kwargs = {name: getattr(self, name) for name in self.hyperparameters}
        if self.uses_temperature:
            kwargs["temperature"] = temperature
        return kwargs

    def compute(self, teacher, student, labels=None, temperature=1.0):
        """One value per sample (or per batch when `per_sample` is False)."""
        tensors = (teacher, student, labels) if self.needs_labels else (teacher, student)
        return self.fn(*tensors, **self.fn_kwargs(temperature))

    def _standardized(self, teacher, student):
        if not self.logit_standardization:
            return teacher, student
        return standardize_logits(teacher), standardize_logits(student)

    def call(self, y_true, y_pred):
        # Keras's protocol: y_true holds the teacher's outputs, y_pred the student's.
        return self.compute(*self._standardized(y_true, y_pred), temperature=self.temperature or 1.0)

    def __call__(self, y_true, y_pred, sample_weight=None, labels=None, temperature=None):
        """The reduced loss; `temperature` (the Distiller's) applies unless this loss fixed its own."""
        if self.needs_labels and labels is None:
            raise ValueError(
                f"{type(self).__name__} needs the labels (it separates the target class); "
                "the data passed to the Distiller has none."
            )
        if self.temperature is not None or temperature is None:
            temperature = self.temperature or 1.0
        if sample_weight is None and len(getattr(y_pred, "shape", ())) > 2:  # sequences: padding from the Keras mask
            sample_weight = get_keras_mask(y_pred)
        values = self.compute(*self._standardized(y_true, y_pred), labels, temperature=temperature)
        if not self.per_sample:
            if sample_weight is not None:
                raise ValueError(
                    f"{type(self).__name__} relates the samples of a batch to each other, so it "
                    "cannot weigh them one by one: drop `sample_weight` or use a per-sample loss."
                )
            return values
        return reduce_values(values, sample_weight, self.kd_reduction)

    def get_config(self):
        config = super().get_config()
        config["reduction"] = self.kd_reduction
        config["temperature"] = self.temperature
        if self.logit_standardization:
            config["logit_standardization"] = True
        config.update({name: getattr(self, name) for name in self.hyperparameters})
        return config
