"""Code written for Keras's own `keras.distillation` runs on keras-kd's `Distiller` unchanged.

Keras 3.12 and later ship `keras.distillation.Distiller(teacher, student, distillation_losses,
distillation_loss_weights=None, student_loss_weight=0.5)` with `LogitsDistillation` and
`FeatureDistillation`. `bind` tells Keras's call of the constructor from keras-kd's own, and
`translate` turns Keras's loss objects into keras-kd's, so that swapping the import is the whole
migration (docs/migrating_from_keras.md).

Where Keras computes something other than what it means, keras-kd computes what it means and
says so once, in a `KerasDifferenceWarning`: `LogitsDistillation()`'s default loss, the string
`"kl_divergence"`, resolves to the plain `kl_divergence` function, which Keras applies to the
logits divided by T (no softmax, no T^2); keras-kd computes Hinton's loss there.
"""

import dataclasses
import sys
import warnings

from keras_kd import losses as kd_losses
from keras_kd.backend import keras
from keras_kd.checks import validate_alpha

KERAS_ONLY = ("distillation_losses", "distillation_loss_weights", "student_loss_weight")
"""Constructor arguments only Keras's call has: any of them makes a call Keras's."""
KERAS_ORDER = ("teacher", "student", "distillation_losses", "distillation_loss_weights", "student_loss_weight", "name")
KERAS_KD_ORDER = ("student", "teacher", "teacher_weights", "features", "teacher_dtype")


class KerasDifferenceWarning(UserWarning):
    """keras-kd computes a `keras.distillation` loss differently from Keras (said once a process)."""


_SAID = set()


def _say_once(message):
    """Warn with `message` once a process, at the user's line (the first frame outside Keras and keras-kd)."""
    if message in _SAID:
        return
    _SAID.add(message)
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in ("keras_kd", "keras"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, KerasDifferenceWarning, stacklevel=level)


_LABEL_LOSS_NAMES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


def say_label_loss_difference(loss):
    """Keras's Distiller hands a loss named by string the student's outputs as probabilities; keras-kd
    reads them as logits, which its students output."""
    if isinstance(loss, str) and loss in _LABEL_LOSS_NAMES and hasattr(keras, "distillation"):
        _say_once(
            f"compile(loss={loss!r}): keras.distillation's Distiller applies the plain {loss} function, which "
            "reads the student's outputs as probabilities; keras-kd's students output logits, so keras-kd "
            "applies it with from_logits=True."
        )


def _looks_like_losses(value):
    """True for Keras's third positional argument (losses), False for keras-kd's (teacher weights)."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return bool(items) and not all(isinstance(item, (int, float)) or item is None for item in items)


def bind(args, kwargs):
    """`(arguments by name, keras_style)` of a `Distiller(...)` call.

    A call is Keras's when it names `distillation_losses`, `distillation_loss_weights` or
    `student_loss_weight`, or passes losses as its third positional argument; its positional
    arguments then follow Keras's order `(teacher, student, distillation_losses, ...)`. Any
    other call follows keras-kd's `(student, teacher, teacher_weights, features, teacher_dtype)`.
    """
    keras_style = any(name in kwargs for name in KERAS_ONLY) or (len(args) >= 3 and _looks_like_losses(args[2]))
    order = KERAS_ORDER if keras_style else KERAS_KD_ORDER
    if len(args) > len(order):
        raise TypeError(f"Distiller takes at most {len(order)} positional arguments ({', '.join(order)}).")
    bound = dict(zip(order, args))
    repeated = sorted(set(bound) & set(kwargs))
    if repeated:
        raise TypeError(f"Distiller got multiple values for {', '.join(repeated)}.")
    arguments = {**bound, **kwargs}
    for role in ("student", "teacher"):
        if arguments.get(role) is None:
            raise ValueError(f"Distiller needs a `{role}` model; received none.")
    return arguments, keras_style


def _keras_class(value, name):
    """True if `value` is an instance of Keras's `keras.distillation.<name>` (Keras 3.12 and later)."""
    cls = getattr(getattr(keras, "distillation", None), name, None)
    return cls is not None and isinstance(value, cls)


def _single(loss, owner):
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError(
            f"{owner} with a loss per output ({loss!r}) is for models with several outputs, which "
            "keras-kd's Distiller does not distil; give one loss."
        )
    return loss


def _name_of(loss):
    return getattr(loss, "__name__", None) or type(loss).__name__


def _logits_loss(keras_term):
    """keras-kd's loss for `LogitsDistillation(temperature, loss)`, and what differs from Keras, if anything."""
    loss = _single(keras_term.loss, "LogitsDistillation")
    if isinstance(loss, keras.losses.KLDivergence):
        # Keras softmaxes both sides and scales by T^2 here: the same loss, computed in log space.
        return kd_losses.KDLoss(), None
    name = _name_of(loss)
    if name in ("kl_divergence", "kld", "kullback_leibler_divergence"):
        return kd_losses.KDLoss(), (
            "keras.distillation.LogitsDistillation(loss='kl_divergence'), Keras's default, applies the plain "
            "kl_divergence function to the logits divided by T (no softmax, no T^2; its value changes when a "
            "constant is added to the teacher's logits). keras-kd computes Hinton's loss there: "
            "T^2 * KL(softmax(teacher / T) || softmax(student / T))."
        )
    if name in ("categorical_crossentropy", "CategoricalCrossentropy"):
        return kd_losses.SoftTargetCrossentropy(), (
            "keras.distillation.LogitsDistillation(loss='categorical_crossentropy') hands the teacher's logits "
            "divided by T to a loss on probabilities. keras-kd computes the soft-target cross-entropy there: "
            "T^2 * H(softmax(teacher / T), softmax(student / T))."
        )
    return kd_losses.KerasLogitsLoss(loss), None  # logit matching: Keras's own formula


@dataclasses.dataclass
class KerasArguments:
    """Keras's `distillation_losses` and `distillation_loss_weights` as the user gave them (saved
    in the Distiller's config, read back through its attributes)."""

    losses: list
    weights: list


@dataclasses.dataclass
class Translation:
    """keras-kd's form of Keras's `distillation_losses`: one response loss (or None), its
    temperature (the Distiller's), feature terms, and what differs from Keras."""

    response: object = None
    temperature: float = None
    features: list = dataclasses.field(default_factory=list)
    differences: list = dataclasses.field(default_factory=list)


def translate(distillation_losses, distillation_loss_weights=None):
    """keras-kd's losses and feature terms for Keras's `distillation_losses` and their weights.

    Each entry may be Keras's `LogitsDistillation` or `FeatureDistillation`, a user's own
    `keras.distillation.DistillationLoss` subclass, keras-kd's own loss (an instance or a name)
    or a `keras_kd.FeatureDistillation` term.

    Raises:
        ValueError: no losses, weights of another length, a loss per output, an unknown object.
    """
    from keras_kd.features import FeatureDistillation as KerasKDFeature

    if distillation_losses is None:
        raise ValueError(
            "'distillation_losses' cannot be None: give a distillation loss (for example "
            "keras.distillation.LogitsDistillation(temperature=3.0)) or a list of them."
        )
    losses = list(distillation_losses) if isinstance(distillation_losses, (list, tuple)) else [distillation_losses]
    if not losses:
        raise ValueError("'distillation_losses' is empty: give at least one distillation loss.")
    weights = [1.0] * len(losses) if distillation_loss_weights is None else list(distillation_loss_weights)
    if len(weights) != len(losses):
        raise ValueError(
            f"Number of distillation_loss_weights ({len(weights)}) must match number of "
            f"distillation_losses ({len(losses)})."
        )
    translation, responses = Translation(), []  # (loss, weight, temperature)
    for loss, weight in zip(losses, weights):
        weight = float(weight)
        if _keras_class(loss, "LogitsDistillation"):
            response, difference = _logits_loss(loss)
            responses.append((response, weight, float(loss.temperature)))
            if difference:
                translation.differences.append(difference)
        elif _keras_class(loss, "FeatureDistillation"):
            inner = _single(loss.loss, "FeatureDistillation")
            teacher_layer, student_layer = loss.teacher_layer_name, loss.student_layer_name
            if teacher_layer is None and student_layer is None:  # the final outputs, as they are
                responses.append((kd_losses.KerasLogitsLoss(inner), weight, 1.0))
            elif teacher_layer is None or student_layer is None:
                raise ValueError(
                    "FeatureDistillation with one layer name: name both the teacher's and the student's "
                    f"layer (received teacher_layer_name={teacher_layer!r}, student_layer_name={student_layer!r})."
                )
            else:
                translation.features.append(
                    KerasKDFeature(
                        kd_losses.KerasFeatureLoss(inner), teacher_layer, student_layer, weight=weight, adapter=None
                    )
                )
        elif isinstance(loss, KerasKDFeature):
            loss.weight = loss.weight * weight
            translation.features.append(loss)
        elif isinstance(loss, (str, dict, kd_losses.DistillationLoss)):
            response = kd_losses.get(loss)
            responses.append((response, weight, response.temperature))
        elif callable(getattr(loss, "compute_loss", None)):
            responses.append((kd_losses.KerasCustomLoss(loss), weight, None))
        else:
            raise ValueError(
                f"Could not interpret distillation loss {loss!r}: give keras.distillation's LogitsDistillation "
                "or FeatureDistillation, a keras-kd loss (or its name) or a keras_kd.FeatureDistillation term."
            )
    _combine(translation, responses)
    for difference in translation.differences:
        _say_once(difference)
    return translation


def _combine(translation, responses):
    """One response loss: a single one hands its temperature to the Distiller (so schedules
    reach it); several keep their own in a `WeightedLosses`."""
    if len(responses) == 1 and responses[0][1] == 1.0:
        loss, _, temperature = responses[0]
        if temperature is not None and loss.uses_temperature:
            loss.temperature, translation.temperature = None, temperature
        translation.response = loss
        return
    for loss, _, temperature in responses:
        if temperature is not None and loss.uses_temperature:
            loss.temperature = temperature
    translation.response = kd_losses.WeightedLosses([r[0] for r in responses], [r[1] for r in responses])
    temperatures = [t for _, _, t in responses if t is not None]
    translation.temperature = temperatures[0] if temperatures else None


def check_student_loss_weight(value):
    """Keras's `student_loss_weight`: a number in [0, 1] (keras-kd's `alpha`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"student_loss_weight must be a number, got {type(value)}")
    return validate_alpha(value)
