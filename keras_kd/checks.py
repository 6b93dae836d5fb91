"""Checks that turn bad input into a clear error before any training starts."""

import numpy as np

from keras_kd.backend import assert_model_of_engine, is_graph_model, keras

_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid", "log_softmax")


class UsageError(ValueError):
    """Settings or data that cannot work, found before training: the CLI prints it and exits with 2."""


def validate_alpha(alpha):
    """Return `alpha` as a float, or raise a ValueError unless 0 <= alpha <= 1."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"`alpha` must be a number in [0, 1]; received {alpha!r}.") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"`alpha` must lie in [0, 1] (it weighs the student loss, 1 - alpha the "
            f"distillation loss); received {alpha!r}."
        )
    return value


def validate_temperature(temperature, argument):
    """Raise a ValueError naming `argument` unless `temperature` is a positive number."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"`{argument}` must be a positive number; received {temperature!r}.") from None
    if not value > 0:
        raise ValueError(
            f"`{argument}` must be > 0 (it divides the logits); received {temperature!r}. "
            "Typical values lie between 1 and 20."
        )


def _activation_name(layer):
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", None) or getattr(activation, "name", None)


def _output_layer(model):
    # Functional and Sequential models list their output layer last.
    if is_graph_model(model) and model.layers:
        return model.layers[-1]
    return None


def check_outputs_are_logits(model, argument):
    """Raise a ValueError if `model` visibly ends in softmax or sigmoid (probabilities)."""
    layer = _output_layer(model)
    if layer is None:
        return
    name = _activation_name(layer)
    if name in _PROBABILITY_ACTIVATIONS:
        raise ValueError(
            f"`{argument}`'s output layer {layer.name!r} applies {name}, so the model outputs "
            "probabilities; distillation softens logits with the temperature. Rebuild it "
            f"with activation=None on {layer.name!r} (the weights stay valid: "
            "`keras_kd.utils.strip_output_activation(model)` does it), and use "
            "from_logits=True in losses."
        )


def _output_shape(model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, list):
        return None
    return tuple(shape) if shape is not None else None


def check_outputs_compatible(teacher, student):
    """Raise a ValueError if teacher and student output shapes visibly differ."""
    teacher_shape, student_shape = _output_shape(teacher), _output_shape(student)
    if teacher_shape is None or student_shape is None:
        return
    if len(teacher_shape) > 2 and len(student_shape) > 2 and teacher_shape[-1] != student_shape[-1]:
        from keras_kd.data.tokens import is_language_model

        if is_language_model(teacher) and is_language_model(student):
            return  # two vocabularies: checked against the loss at compile; each model may read its own ids
    if teacher_shape[1:] != student_shape[1:]:
        raise ValueError(
            f"The teacher's output shape {teacher_shape} differs from the student's "
            f"{student_shape}: the distillation loss compares them class by class. Give the "
            "student the teacher's number of classes."
        )


def _cardinality(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - Keras 3 without TensorFlow
        return None
    if isinstance(data, tf.data.Dataset):
        value = int(data.cardinality())
        return None if value < 0 else value
    return None


def check_not_empty(data, argument):
    """Raise a ValueError if `data` is an array or dataset with no samples."""
    if data is None:
        return
    if isinstance(data, (tuple, list)) and data and not hasattr(data, "shape"):
        return check_not_empty(data[0], argument)
    if isinstance(data, dict):
        for value in data.values():
            check_not_empty(value, argument)
        return
    count = _cardinality(data)
    if count is None and hasattr(data, "shape") and getattr(data, "ndim", 1) > 0:
        count = int(np.shape(data)[0])
    if count == 0:
        raise ValueError(
            f"`{argument}` holds no samples, so there is nothing to train or evaluate on. "
            "Check the data loading and any filtering, split or `take()` applied to it."
        )


def model_input_shapes(model):
    """The input shapes of a model as a list (one per input), or None where unknown."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, tuple) and (not shape or isinstance(shape[0], (int, type(None)))):
        return [tuple(shape)]
    if isinstance(shape, (list, tuple)) and all(isinstance(s, tuple) for s in shape):
        return [tuple(s) for s in shape]
    return None


def shapes_fit(data_shape, model_shape):
    """True if per-example `data_shape` fits `model_shape` (None matches any size; a trailing 1 may be added)."""
    data_shape, model_shape = tuple(data_shape), tuple(model_shape)
    if len(data_shape) == len(model_shape) + 1 and data_shape[-1:] == (1,):
        data_shape = data_shape[:-1]
    elif len(model_shape) == len(data_shape) + 1 and model_shape[-1:] == (1,):
        model_shape = model_shape[:-1]
    return len(data_shape) == len(model_shape) and all(
        d is None or m is None or d == m for d, m in zip(data_shape, model_shape)
    )


def check_inputs_compatible(teacher, student, argument):
    """Raise a ValueError if the teacher's inputs visibly cannot take the student's data."""
    from keras_kd.data.tokens import vocabulary_size

    teacher_shapes, student_shapes = model_input_shapes(teacher), model_input_shapes(student)
    if teacher_shapes is None or student_shapes is None or len(teacher_shapes) != len(student_shapes):
        return
    if vocabulary_size(teacher) != vocabulary_size(student):
        return  # two tokenizers: each model reads its own token ids (`split_inputs`)
    for t_shape, s_shape in zip(teacher_shapes, student_shapes):
        if not shapes_fit(s_shape[1:], t_shape[1:]):
            raise ValueError(
                f"`{argument}` takes inputs of shape {t_shape}, but the student takes {s_shape}: both models "
                "read the same batches. Give the teacher the student's input shape (resize or pad inside "
                "the teacher, e.g. a keras.layers.Resizing layer first), or pick a student for this data."
            )


def normalized_teacher_weights(weights, count):
    """Several teachers' weights, checked and scaled to sum to 1 (equal when None)."""
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"`teacher_weights` must be {count} non-negative numbers with a positive sum, one "
            f"per teacher; received {weights}."
        )
    return [w / sum(weights) for w in weights]


def checked_teachers(student, teacher):
    """`teacher` (one model or a list) as a list, each checked against the student.

    Raises:
        TypeError: a model that is not a Keras model of the active engine.
        ValueError: no teacher, a model ending in softmax, output or input shapes that differ.
    """
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
        check_inputs_compatible(model, student, argument)
    return teachers
