"""Bad data refused before the first step: labels, shapes and non-finite values, on every backend.

`Distiller.fit` and `evaluate` call `check_data` once. It peeks at the first batches in
Python (NumPy arrays: the first `PEEK_ROWS` rows and every label; a `tf.data.Dataset`: its
first `PEEK_BATCHES` batches; a `keras.utils.PyDataset` or a Python generator: its first batch,
which `fit` then gets again) and raises a
`ValueError` that names the argument, the offending value and the fix for:

- an empty dataset, including a `tf.data` pipeline filtered down to nothing;
- inputs whose per-example shape does not fit the student's or a teacher's inputs;
- NaN or infinite inputs, labels or sample weights;
- class indices outside `[0, classes)` (`MISSING_LABEL`, -1, marks an unlabelled row of a
  transfer set and is accepted), labels whose shape is neither class indices nor one-hot
  rows, one-hot rows of another width than the student's outputs.

`check_numerics=True` checks every batch instead (arrays in full before training; a dataset
through an assertion in its pipeline, reported as a `ValueError` with the batch index).
`StopOnNonFiniteLoss`, added to every `fit`, stops training with the batch index at the first
non-finite loss or input of any batch, with no host synchronisation per batch.
"""

import contextlib
import inspect
import re

import numpy as np

from keras_kd.backend import keras, to_numpy
from keras_kd.checks import check_not_empty, model_input_shapes, shapes_fit
from keras_kd.data.keys import unpack
from keras_kd.data.transfer import MISSING_LABEL

PEEK_ROWS = 1024
PEEK_BATCHES = 2
_NUMERICS_MARKER = "keras_kd check_numerics: non-finite values in batch"


def _tf():
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - Keras 3 without TensorFlow
        return None
    return tf


def _is_dataset(data):
    tf = _tf()
    return tf is not None and isinstance(data, tf.data.Dataset)


def _is_py_dataset(data):
    kinds = tuple(getattr(keras.utils, name) for name in ("PyDataset", "Sequence") if hasattr(keras.utils, name))
    return isinstance(data, kinds)


def _split(element):
    """`(x, y, sample_weight)` of one batch as a dataset yields it."""
    if isinstance(element, tuple):
        element = element + (None,) * (3 - len(element))
        return element[0], element[1], element[2]
    return element, None, None


def _numpy(value):
    if value is None:
        return None
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        try:
            return np.asarray(value.numpy())
        except (TypeError, ValueError, RuntimeError):  # a PyTorch tensor that needs a gradient, a string tensor
            pass
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _leaves(data):
    """`(path, array)` for each array in a nested input structure."""
    if data is None:
        return []
    if isinstance(data, dict):
        return [(f"[{key!r}]{path}", leaf) for key, value in data.items() for path, leaf in _leaves(value)]
    if isinstance(data, (list, tuple)) and not hasattr(data, "shape"):
        return [(f"[{index}]{path}", leaf) for index, value in enumerate(data) for path, leaf in _leaves(value)]
    array = _numpy(data)
    return [] if array is None else [("", array)]


def _batches(x, y, sample_weight, rows):
    """Up to `PEEK_BATCHES` batches `(x, y, sample_weight, first row index)`, or None if this data cannot be peeked."""
    if _is_dataset(x):
        tf = _tf()
        return [(*_split(tf.nest.map_structure(_numpy, element)), i) for i, element in enumerate(x.take(PEEK_BATCHES))]
    if _is_py_dataset(x):
        try:
            length = len(x)
        except TypeError:
            return None
        return [(*_split(x[0]), 0)] if length else []
    if x is None or (not hasattr(x, "shape") and not isinstance(x, (dict, list, tuple))):
        return None  # a generator or an iterator: reading it would consume it
    sliced = _slice(x, rows)
    if sliced is None:
        return None
    weights = None if sample_weight is None else _numpy(sample_weight)
    labels = None if y is None else _numpy(y)  # every label: cheap, and a bad one may sit anywhere
    return [(sliced, labels, weights, None)]


def _slice(x, rows):
    if isinstance(x, dict):
        parts = {key: _slice(value, rows) for key, value in x.items()}
        return None if any(v is None for v in parts.values()) else parts
    if isinstance(x, (list, tuple)) and not hasattr(x, "shape"):
        parts = [_slice(value, rows) for value in x]
        return None if any(v is None for v in parts) else type(x)(parts)
    if not hasattr(x, "shape"):
        return None
    return _numpy(x if rows is None else x[:rows])


def _empty_error(argument):
    return ValueError(
        f"`{argument}` yields no batches, so there is nothing to train or evaluate on. Check the data "
        "loading and any `filter`, split or `take()` applied to it (a tf.data pipeline filtered down to "
        "nothing has an unknown size, so only reading it shows that it is empty)."
    )


def _check_finite(array, argument, what, batch):
    if array.dtype.kind not in "fc" or array.size == 0:
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = tuple(int(i) for i in np.argwhere(~finite)[0])
    where = f"at index {bad}" if batch is None else f"in batch {batch}, at index {bad} of that batch"
    raise ValueError(
        f"`{argument}` holds a non-finite {what} ({float(np.real(array[bad]))}) {where}. One NaN in the inputs "
        "destroys the student's weights in one step while the loss can stay finite. Clean the data first "
        "(drop those rows, or np.nan_to_num / an imputing layer), and pass `check_numerics=True` to `fit` "
        "to check every batch."
    )


def _check_input_shapes(distiller, x, argument):
    leaves = _leaves(x)
    if len(leaves) != 1 or leaves[0][1].ndim < 1:
        return
    data_shape = leaves[0][1].shape[1:]
    for name, model in (("student", distiller.student), *_teacher_names(distiller)):
        shapes = model_input_shapes(model)
        if shapes is None or len(shapes) != 1:
            continue
        if not shapes_fit(data_shape, shapes[0][1:]):
            raise ValueError(
                f"`{argument}` holds examples of shape {tuple(data_shape)}, but the {name} takes inputs of "
                f"shape {shapes[0]}. Pass data shaped (batch,) + {tuple(shapes[0][1:])}, or a {name} built "
                "for this data."
            )


def _teacher_names(distiller):
    teachers = distiller.teachers
    return [("teacher" if len(teachers) == 1 else f"teacher[{i}]", model) for i, model in enumerate(teachers)]


def _output_shape(distiller):
    try:
        shape = distiller.student.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    return tuple(shape) if isinstance(shape, tuple) and shape and not isinstance(shape[0], tuple) else None


def check_labels(labels, output_shape, argument="y"):
    """Raise a ValueError unless `labels` fit the student's `output_shape` (class indices or one-hot rows)."""
    if labels is None or output_shape is None or labels.dtype.kind not in "biuf" or labels.ndim < 1:
        return
    classes = output_shape[-1]
    _check_finite(labels, argument, "label", None)
    sparse_shape, one_hot_shape = output_shape[1:-1], output_shape[1:]
    shape = labels.shape[1:]
    if shapes_fit(shape, sparse_shape) and (len(shape) == len(sparse_shape) or shape[-1:] == (1,)):
        _check_class_indices(labels, classes, argument)
    elif not shapes_fit(shape, one_hot_shape):
        sparse, one_hot = ("batch", *sparse_shape), ("batch", *one_hot_shape)
        raise ValueError(
            f"`{argument}` has shape {labels.shape}: neither class indices (shape {_shape(sparse)}, or with a "
            f"trailing 1) nor one-hot rows of the student's {classes} classes (shape {_shape(one_hot)}). Pass "
            f"class indices, or one-hot rows of width {classes} (keras.utils.to_categorical(y, {classes})); "
            "teacher and student must output one logit per class."
        )


def _shape(dims):
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _check_class_indices(labels, classes, argument):
    if not classes or classes < 2:
        return  # one output (binary): its labels are 0/1 or probabilities
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        bad = labels[labels != np.round(labels)].flat[0]
        raise ValueError(
            f"`{argument}` holds class indices (its shape fits the student's outputs as indices) but one is "
            f"{bad!r}, not a whole number. Pass integer class indices in [0, {classes})."
        )
    outside = (labels >= classes) | ((labels < 0) & (labels != MISSING_LABEL))
    if outside.any():
        values = np.unique(labels[outside])
        raise ValueError(
            f"`{argument}` holds class indices outside [0, {classes}): {values[:5].tolist()} (the student outputs "
            f"{classes} classes; {MISSING_LABEL} marks an unlabelled example). Such a label gets a silently wrong "
            f"loss. Fix the labels (e.g. map 1..{classes} to 0..{classes - 1}), or give the student and teacher "
            "one output per class that occurs."
        )


def check_data(distiller, x, y=None, sample_weight=None, argument="x", check_numerics=False):
    """Peek at the first batches of `x` (and `y`, `sample_weight`); raise a ValueError for bad data."""
    check_not_empty(x, argument)
    rows = None if check_numerics else PEEK_ROWS
    batches = _batches(x, y, sample_weight, rows)
    if batches is None:
        return  # a generator: not read twice
    if not batches:
        raise _empty_error(argument)
    output_shape = _output_shape(distiller)
    names = ("y", "sample_weight") if argument == "x" else (f"{argument}`'s labels `y", f"{argument}`'s `sample_weight")
    for inputs, labels, weights, batch in batches:
        inputs = unpack(inputs)[0]
        if not _leaves(inputs) or all(leaf.size == 0 for _, leaf in _leaves(inputs)):
            raise _empty_error(argument)
        _check_input_shapes(distiller, inputs, argument)
        for path, leaf in _leaves(inputs):
            _check_finite(leaf, argument + path, "input value", batch)
        check_labels(labels, output_shape, names[0])
        if weights is not None:
            _check_finite(weights, names[1], "sample weight", batch)


def check_fit_arguments(distiller, x, y, kwargs, check_numerics=False, teacher_cache=None):
    """`check_data` on `x` and `validation_data`; returns `(x, kwargs)` with the per-batch checks attached.

    A dataset with a teacher cache is not peeked at: the cache reads it in full before training
    (each pass of a generator-backed dataset may differ, and the cache checks them batch by batch).
    """
    check_not_empty(x, "x")
    if inspect.isgenerator(x):
        x = _peeked_generator(distiller, x, check_numerics)
    elif teacher_cache is None or teacher_cache is False or not _is_dataset(x):
        check_data(distiller, x, y, kwargs.get("sample_weight"), "x", check_numerics)
    if kwargs.get("verbose", "auto") != 0:
        _say_unlabelled(y)
    validation = kwargs.get("validation_data")
    if validation is not None:
        check_not_empty(validation, "validation_data")
        if inspect.isgenerator(validation):  # checked like the training data, then replayed
            kwargs = {**kwargs, "validation_data": _peeked_generator(distiller, validation, False, "validation_data")}
        elif isinstance(validation, tuple) and not _is_dataset(validation):
            check_data(distiller, *_split(validation), argument="validation_data")
        else:
            check_data(distiller, validation, argument="validation_data")
    kwargs = dict(kwargs)
    callbacks = kwargs.get("callbacks")
    if not isinstance(callbacks, (list, tuple)) and callbacks is not None:
        callbacks = list(getattr(callbacks, "callbacks", [callbacks]))
    # A BackupAndRestore first: it restores the weights and step before any other callback reads them
    # (TF-MOT's UpdatePruningStep takes its step from the optimizer in on_train_begin).
    callbacks = sorted(callbacks or [], key=lambda c: not isinstance(c, keras.callbacks.BackupAndRestore))
    kwargs["callbacks"] = [*callbacks, StopOnNonFiniteLoss()]
    if check_numerics and _is_dataset(x):
        x = _assert_finite_batches(x)
    return x, kwargs


def _say_unlabelled(y):
    """Say once, as `fit` starts, how many rows of array labels are `MISSING_LABEL` (unlabelled): right
    for a transfer set, a surprise where -1 came from elsewhere (`pandas.Categorical.codes` of a NaN)."""
    labels = _numpy(y) if y is not None and hasattr(y, "shape") else None
    if labels is None or labels.dtype.kind not in "iuf" or labels.ndim < 1 or labels.size == 0:
        return
    if labels.ndim > 1 and labels.shape[-1] != 1:
        return  # one-hot rows
    missing = int(np.sum(labels.reshape(len(labels), -1)[:, 0] == MISSING_LABEL))
    if missing:
        print(
            f"keras-kd: {missing:,} of {len(labels):,} rows of `y` are {MISSING_LABEL} (keras_kd.MISSING_LABEL): they "
            "train on the teacher's soft targets alone, with no label loss.",
            flush=True,
        )


def _peeked_generator(distiller, generator, check_numerics, argument="x"):
    """Check a generator's first batch like any data, then hand `fit` a generator that yields it again."""
    try:
        first = next(generator)
    except StopIteration:
        raise _empty_error(argument) from None
    inputs, labels, weights = _split(first)
    check_data(distiller, inputs, labels, weights, argument, check_numerics)

    def replayed():
        yield first
        yield from generator

    return replayed()


def _assert_finite_batches(dataset):
    """`dataset` with an assertion on every batch: its float values are all finite."""
    tf = _tf()

    def check(index, element):
        leaves = [leaf for leaf in tf.nest.flatten(element) if leaf.dtype.is_floating]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(leaf)) for leaf in leaves]) if leaves else True
        assertion = tf.debugging.Assert(finite, [_NUMERICS_MARKER, index])
        with tf.control_dependencies([assertion]):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.enumerate().map(check)


@contextlib.contextmanager
def numerics_errors():
    """Turn `check_numerics`'s dataset assertion into a ValueError with the batch index."""
    tf = _tf()
    if tf is None:  # pragma: no cover
        yield
        return
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = re.search(re.escape(_NUMERICS_MARKER) + r"\D*(\d+)", str(error))
        if not found:
            raise
        raise ValueError(
            f"`x` holds non-finite values (NaN or inf) in batch {found.group(1)} (check_numerics=True stopped "
            "training before that batch reached the student). Clean the data: drop those rows, or "
            "np.nan_to_num / an imputing layer in the pipeline."
        ) from None


class NonFiniteLossError(ValueError):
    """Training stopped where the loss or an input became NaN or infinite (a `ValueError`, as before);
    a search (`keras_kd.jobs.sweep`) catches it to drop the diverged setting and go on."""


class StopOnNonFiniteEpochLoss(keras.callbacks.Callback):
    """For a plain Keras `fit` (the jobs' student from labels and teacher): a `NonFiniteLossError` at the
    end of the epoch whose mean loss is NaN or infinite, read from the epoch's logs (no extra host
    synchronisation), so a diverged model stops as a diverged Distiller does instead of training on."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"The loss became non-finite (NaN or inf) in epoch {epoch + 1}; training stopped. Lower the "
                "learning rate, or clip gradients (`clipnorm=1.0` in the optimizer)."
            )


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training with a ValueError that names the batch where the loss or an input first became
    NaN or infinite, with the student's weights of the start of that epoch restored.

    The Distiller records that batch in the step itself (`Distiller._first_nonfinite_step`); this
    callback reads the record every `check_every` batches and at the end of each epoch, so it costs
    no host synchronisation per batch. Unlike `keras.callbacks.TerminateOnNaN`, which stops quietly
    and keeps the destroyed weights, the run fails saying where, and the student stays usable.
    """

    def __init__(self, check_every=32):
        super().__init__()
        self.check_every = int(check_every)
        self._epoch, self._epoch_start_step, self._weights = 0, 0, None

    def _record(self):
        return getattr(self.model, "_first_nonfinite_step", None)

    def on_train_begin(self, logs=None):
        if self._record() is not None:
            self.model._first_nonfinite_step.assign(-1)

    def on_epoch_begin(self, epoch, logs=None):
        if self._record() is None:
            return
        self._epoch = epoch
        self._epoch_start_step = int(to_numpy(self.model._steps_trained))
        self._weights = self.model.student.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        # `self.model` is not touched between checks: on JAX reading it syncs the training state.
        if (batch + 1) % self.check_every == 0:
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def _check(self):
        record = self._record()
        if record is None:
            return
        first = int(to_numpy(record))
        if first < 0:
            return
        self.model.stop_training = True
        if self._weights is not None:
            self.model.student.set_weights(self._weights)
        raise NonFiniteLossError(
            f"The loss or the inputs became non-finite (NaN or inf) at batch {first - self._epoch_start_step} of "
            f"epoch {self._epoch + 1}; training stopped and the student's weights of the start of that epoch are "
            "restored. Check the data (pass `check_numerics=True` to `fit` to check every batch before it "
            "trains), lower the learning rate or the temperature, or clip gradients (`clipnorm=1.0` in the "
            "optimizer)."
        )
