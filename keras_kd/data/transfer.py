"""Transfer sets: labelled and unlabelled examples in one `fit`, the way distillation is used.

A teacher usually knows more than the labels a student has: it was trained on more data,
or pre-trained elsewhere. Distilling on a *transfer set* (the few labelled examples plus a
pool of unlabelled ones, all scored by the teacher) passes that knowledge on. Unlabelled
rows carry `MISSING_LABEL` (-1) as a class index, or an all-zero row as one-hot labels; the
Distiller then averages its label loss over the labelled rows only, computes the
distillation loss over all rows, and leaves unlabelled rows out of the Keras metrics.
"""

import numpy as np

from keras_kd import backend
from keras_kd.backend import ops

MISSING_LABEL = -1
"""The class index that marks an example without a label."""


def transfer_set(labeled, unlabeled, shuffle: bool = True, seed: int = 0):
    """Labelled examples and an unlabelled pool as one `(x, y)` to pass to `Distiller.fit`.

    Args:
        labeled: `(x, y)` with `y` class indices (or one-hot rows), NumPy arrays; or a
            `tf.data.Dataset` of unbatched `(x, y)` elements.
        unlabeled: inputs without labels, shaped like `x`; or a `tf.data.Dataset` of
            unbatched inputs.
        shuffle: mix the two parts (arrays only; a dataset is shuffled by its user).
        seed: seed of that shuffle.

    Returns:
        `(x, y)` arrays, the unlabelled rows' labels `MISSING_LABEL` (or all-zero one-hot
        rows); or, for datasets, one unbatched dataset of `(x, y)` to shuffle and batch.

    Example:
    >>> x, y = keras_kd.transfer_set((x_few, y_few), x_pool)
    >>> distiller.fit(x, y, epochs=30)          # label loss on x_few, soft targets on all
    """
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - Keras 3 without TensorFlow
        tf = None
    if tf is not None and isinstance(labeled, tf.data.Dataset):
        if not isinstance(unlabeled, tf.data.Dataset):
            raise TypeError("`labeled` is a tf.data.Dataset, so `unlabeled` must be one too.")
        label_spec = labeled.element_spec[1]
        missing = tf.cast(tf.fill(label_spec.shape, MISSING_LABEL), label_spec.dtype)
        if label_spec.shape.rank:  # one-hot rows: all zeros marks the missing label
            missing = tf.zeros(label_spec.shape, label_spec.dtype)
        return labeled.concatenate(unlabeled.map(lambda x: (x, missing)))
    if not (isinstance(labeled, (tuple, list)) and len(labeled) == 2):
        raise TypeError(f"`labeled` must be a pair (x, y) of arrays or a tf.data.Dataset; received {type(labeled)!r}.")
    x_labeled, y_labeled = np.asarray(labeled[0]), np.asarray(labeled[1])
    x_unlabeled = np.asarray(unlabeled)
    if len(x_labeled) != len(y_labeled):
        raise ValueError(f"`labeled` holds {len(x_labeled)} inputs but {len(y_labeled)} labels.")
    if x_unlabeled.shape[1:] != x_labeled.shape[1:]:
        raise ValueError(
            f"Unlabelled inputs have shape {x_unlabeled.shape[1:]} per example, labelled ones "
            f"{x_labeled.shape[1:]}: both parts must be the same kind of input."
        )
    if y_labeled.ndim > 1:  # one-hot
        y_missing = np.zeros((len(x_unlabeled),) + y_labeled.shape[1:], y_labeled.dtype)
    else:
        y_missing = np.full(len(x_unlabeled), MISSING_LABEL, dtype=np.int64)
        y_labeled = y_labeled.astype(np.int64)
    x = np.concatenate([x_labeled, x_unlabeled.astype(x_labeled.dtype)])
    y = np.concatenate([y_labeled, y_missing])
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(x))
        x, y = x[order], y[order]
    return x, y


def label_mask(y, y_pred):
    """1.0 for each row of `y` that has a label, 0.0 for a missing one; shape `(batch,)`.

    Class indices below 0 are missing; one-hot (or soft) rows that sum to 0 are missing.
    Sequence outputs `(batch, time, classes)` take one label per token: the mask is then
    `(batch, time)`.
    """
    y = ops.convert_to_tensor(y)
    classes = y_pred.shape[-1]
    one_hot = len(y.shape) == len(y_pred.shape) and classes is not None and classes > 1 and y.shape[-1] == classes
    if one_hot:
        present = ops.sum(ops.cast(y, "float32"), axis=-1) > 0
    elif len(y_pred.shape) > 2:  # one class index per token
        present = ops.reshape(ops.cast(y, "float32"), ops.shape(ops.convert_to_tensor(y_pred))[:-1]) >= 0
    else:
        present = ops.reshape(ops.cast(y, "float32"), (ops.shape(y)[0], -1))[:, 0] >= 0
    return ops.cast(present, "float32")


def fill_missing(y, mask, fallback=None):
    """`y` with missing labels replaced, so that any Keras loss or metric accepts it.

    Args:
        fallback: class indices `(batch,)` to use where a label is missing (the Distiller
            passes the teacher's top class, for losses such as DKD that need a target
            class); default class 0, for terms whose weight is zero on those rows anyway.
    """
    y = ops.convert_to_tensor(y)
    keep = ops.cast(mask, "bool")
    # Class indices: one per row (or per token: the mask has their rank), possibly with an axis of 1.
    if len(y.shape) == len(mask.shape) or (len(y.shape) == len(mask.shape) + 1 and y.shape[-1] == 1):
        replacement = ops.zeros_like(y) if fallback is None else ops.reshape(ops.cast(fallback, y.dtype), ops.shape(y))
        return ops.where(ops.reshape(keep, ops.shape(y)), y, replacement)
    if fallback is None:
        return y  # one-hot rows of zeros are valid input already
    replacement = ops.one_hot(ops.cast(fallback, "int32"), y.shape[-1], dtype=y.dtype)
    return ops.where(ops.expand_dims(keep, -1), y, replacement)


def masked_weight(mask, sample_weight):
    """The per-example (or per-token) weight for the label loss and metrics: the mask times any sample weight."""
    if sample_weight is None:
        return mask
    weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    if len(mask.shape) > 1:  # tokens: a (batch,) weight covers its sequence, (batch, time, 1) drops its axis
        if len(weight.shape) == len(mask.shape) + 1 and weight.shape[-1] == 1:
            weight = ops.squeeze(weight, axis=-1)
        while len(weight.shape) < len(mask.shape):
            weight = ops.expand_dims(weight, -1)
        return mask * weight
    if len(weight.shape) > 1:
        weight = ops.reshape(weight, (ops.shape(weight)[0], -1))[:, 0]
    return mask * weight


def labelled_mean(loss_fn, y, y_pred, mask, sample_weight=None):
    """`loss_fn` over the labelled rows (or tokens) only: its weighted sum divided by their number in
    the global batch (the sum itself for a Keras loss with `reduction="sum"`).

    Per-row values come from a Keras loss's `call`, so that Keras's replica scaling is not applied
    twice, computed in float32 also under mixed precision; the count is summed over replicas, so
    that N devices give one device's mean.
    """
    per_row = getattr(loss_fn, "call", loss_fn)(fill_missing(y, mask), ops.cast(y_pred, "float32"))
    total = ops.sum(ops.cast(per_row, "float32") * masked_weight(mask, sample_weight))
    if getattr(loss_fn, "reduction", None) == "sum":
        return total * backend.replicas_in_sync()
    return total * backend.replicas_in_sync() / ops.maximum(backend.sum_over_replicas(ops.sum(mask)), 1.0)
