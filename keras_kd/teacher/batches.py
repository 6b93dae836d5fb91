"""The teacher's pass over inputs, batch by batch, and how each cache knows its inputs again.

Every cache (`TeacherCache`, `TopKTeacherCache`, its on-disk form, `AugmentedTeacherCache`) runs
the teacher through `teacher_batches` and `collect`, and recognises arrays by `fingerprint` and
a dataset's batches by `batch_hash`: a batch in another order fails instead of training on
another example's targets.
"""

import hashlib

import numpy as np

from keras_kd.backend import to_numpy
from keras_kd.data.keys import unpack

_FINGERPRINT_ROWS = 4096  # rows hashed: enough to tell data sets apart, fast on large ones
ORDER_FIX = (
    "A dataset that reshuffles on every pass cannot be cached: build the cache from the dataset before "
    "`shuffle` (and shuffle nothing after it), or use `shuffle(..., reshuffle_each_iteration=False)`, "
    "or shuffle=False in the keras.utils loaders."
)


def fingerprint(x):
    """A short hash of an array's (or a dict of arrays') shape, dtype and a deterministic sample of its rows."""
    digest = hashlib.blake2b(digest_size=16)
    for key, leaf in named_leaves(x):
        leaf = np.asarray(leaf)
        step = max(1, len(leaf) // _FINGERPRINT_ROWS)
        digest.update(repr((key, leaf.shape, str(leaf.dtype))).encode())
        digest.update(np.ascontiguousarray(leaf[::step]).tobytes())
    return digest.hexdigest()


def named_leaves(x):
    """`(key, array)` pairs: one for an array, one per entry (sorted) for a dict such as keras-hub's inputs."""
    if isinstance(x, dict):
        return [(key, x[key]) for key in sorted(x)]
    return [(None, x)]


def num_rows(x):
    """The number of examples in an array or a dict of arrays."""
    return len(named_leaves(x)[0][1])


def row_range(x, start, stop):
    """Rows `start:stop` of an array, or of every array of a dict."""
    return {key: value[start:stop] for key, value in x.items()} if isinstance(x, dict) else x[start:stop]


def is_dataset(x):
    """True for a `tf.data.Dataset` (False where TensorFlow is not installed)."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - Keras 3 without TensorFlow
        return False
    return isinstance(x, tf.data.Dataset)


def split_element(element):
    """`(x, rest)` of one dataset element: `(x, y[, w])` tuples, or `x` alone."""
    if isinstance(element, tuple):
        return element[0], element[1:]
    return element, ()


def batch_hash(inputs):
    """One int64 per input tensor of a batch: a hash of its serialized bytes (shape, dtype, values)."""
    import tensorflow as tf

    return tf.stack(
        [tf.strings.to_hash_bucket_fast(tf.io.serialize_tensor(leaf), 2**62) for leaf in tf.nest.flatten(inputs)]
    )


def batch_length(inputs):
    """The number of examples in one batch of a dataset (its first tensor's first dimension)."""
    import tensorflow as tf

    return int(tf.shape(tf.nest.flatten(inputs)[0])[0])


def dataset_fingerprint(batch_sizes, batch_hashes):
    """A short hash of a dataset's batch sizes and batch hashes: the fingerprint of its whole pass."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray(batch_sizes, "int64").tobytes())
    digest.update(np.asarray(batch_hashes, "int64").tobytes())
    return digest.hexdigest()


def check_finite(dataset, argument):
    """Refuse an endless dataset (`repeat()`): a cache holds one finite pass."""
    import tensorflow as tf

    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"`{argument}` is an infinite dataset (`repeat()`); a teacher cache needs one finite pass: "
            "cache the dataset before `repeat`, and let `fit(epochs=...)` repeat it."
        )


def teacher_batches(teacher, x, batch_size):
    """`(inputs, teacher logits as NumPy, input hash or None)` per batch of `x`, and the fingerprint of `x`."""
    teachers = teacher if isinstance(teacher, (list, tuple)) else [teacher]
    if len(teachers) != 1:
        raise ValueError("A teacher cache is built from one teacher; cache an ensemble by caching its model.")
    model = teachers[0]
    if is_dataset(x):
        check_finite(x, "x")

        def from_dataset():
            for element in x:
                inputs, _, _ = unpack(split_element(element)[0])
                yield inputs, to_numpy(model(inputs, training=False)), np.asarray(batch_hash(inputs))

        return from_dataset(), None
    if num_rows(x) == 0:
        raise ValueError("`x` holds no samples: there is nothing to cache.")

    def from_arrays():
        # A plain model runs through `predict` (one compiled function for every batch: the eager call
        # per batch cost more than the pass); a keras-hub task, whose `predict` would preprocess, is called.
        whole = None
        if getattr(model, "preprocessor", None) is None and not isinstance(x, dict):
            whole = np.asarray(to_numpy(model.predict(x, batch_size=batch_size, verbose=0)))
        for start in range(0, num_rows(x), batch_size):
            inputs = row_range(x, start, start + batch_size)
            logits = whole[start : start + batch_size] if whole is not None else to_numpy(model(inputs, training=False))
            yield inputs, logits, None

    return from_arrays(), fingerprint(x)


def collect(batches, convert):
    """Run the teacher batch by batch, keep `convert(inputs, logits)` (an array, or a dict of
    arrays) per batch; `(stored outputs concatenated, fingerprint, number of examples, batches)`,
    `batches` the sizes and input hashes of a dataset's batches, `()` for arrays."""
    stream, fingerprint_ = batches
    parts, sizes, hashes = [], [], []
    for inputs, batch_logits, batch_hash in stream:
        parts.append(convert(inputs, batch_logits))
        sizes.append(len(batch_logits))
        hashes.append(batch_hash)
    if not parts:
        raise ValueError("`x` holds no samples: there is nothing to cache.")
    try:
        if isinstance(parts[0], dict):
            stored = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        else:
            stored = np.concatenate(parts)
    except ValueError as error:
        raise ValueError(
            "The teacher's outputs differ in shape from batch to batch (sequences padded to each batch's "
            "longest?): a cache needs one shape; pad every batch to one length (keras-hub preprocessors "
            f"do, with `sequence_length`). ({error})"
        ) from None
    if fingerprint_ is not None:
        return stored, fingerprint_, sum(sizes), ()
    return stored, dataset_fingerprint(sizes, hashes), sum(sizes), (sizes, np.stack(hashes))
