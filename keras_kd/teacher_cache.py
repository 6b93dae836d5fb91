"""`TeacherCache`: the teacher's logits computed once, so that distillation costs what training the student costs.

Valid for data without random augmentation: the teacher's output for each example does
not change between epochs. The cache stores a fingerprint of the inputs it was built
from and refuses other inputs.

Two kinds of data:

- NumPy arrays: Keras shuffles the cached logits together with the inputs, so the arrays
  may be shuffled by `fit` as usual.
- A finite `tf.data.Dataset` of `(x, y[, sample_weight])` batches (or of `x` batches) that
  yields the same batches in the same order on every pass: build it before any `shuffle`,
  or shuffle with `reshuffle_each_iteration=False`. The cache hashes every batch's inputs
  as they stream (nothing is held in memory but the logits and one hash per batch), keeps
  the logits batch by batch (a smaller last batch included), and, during training, checks
  each batch's hash again before handing it its logits, so that a dataset whose order
  changes between epochs stops with an error instead of training on misaligned targets.
"""

import hashlib

import numpy as np

from keras_kd import atomic
from keras_kd.backend import ops, to_numpy
from keras_kd.inputs import INDEX_KEY, INPUTS_KEY, TEACHER_LOGITS_KEY, split_inputs, unpack

_SAVED_PREFIX = "target_"  # the stored outputs' keys in a saved file
_FINGERPRINT_ROWS = 4096  # rows hashed: enough to tell data sets apart, fast on large ones
_ORDER_FIX = (
    "A dataset that reshuffles on every pass cannot be cached: build the cache from the dataset before "
    "`shuffle` (and shuffle nothing after it), or use `shuffle(..., reshuffle_each_iteration=False)`, "
    "or shuffle=False in the keras.utils loaders."
)


def fingerprint(x):
    """A short hash of an array's (or a dict of arrays') shape, dtype and a deterministic sample of its rows."""
    digest = hashlib.blake2b(digest_size=16)
    for key, leaf in _leaves(x):
        leaf = np.asarray(leaf)
        step = max(1, len(leaf) // _FINGERPRINT_ROWS)
        digest.update(repr((key, leaf.shape, str(leaf.dtype))).encode())
        digest.update(np.ascontiguousarray(leaf[::step]).tobytes())
    return digest.hexdigest()


def _leaves(x):
    """`(key, array)` pairs: one for an array, one per entry (sorted) for a dict such as keras-hub's inputs."""
    if isinstance(x, dict):
        return [(key, x[key]) for key in sorted(x)]
    return [(None, x)]


def _num_rows(x):
    return len(_leaves(x)[0][1])


def _rows(x, start, stop):
    return {key: value[start:stop] for key, value in x.items()} if isinstance(x, dict) else x[start:stop]


def _is_dataset(x):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - Keras 3 without TensorFlow
        return False
    return isinstance(x, tf.data.Dataset)


def _split_element(element):
    """`(x, rest)` of one dataset element: `(x, y[, w])` tuples, or `x` alone."""
    if isinstance(element, tuple):
        return element[0], element[1:]
    return element, ()


def _batch_hash(inputs):
    """One int64 per input tensor of a batch: a hash of its serialized bytes (shape, dtype, values)."""
    import tensorflow as tf

    return tf.stack(
        [tf.strings.to_hash_bucket_fast(tf.io.serialize_tensor(leaf), 2**62) for leaf in tf.nest.flatten(inputs)]
    )


def _batch_size(inputs):
    import tensorflow as tf

    return int(tf.shape(tf.nest.flatten(inputs)[0])[0])


def _dataset_fingerprint(batch_sizes, batch_hashes):
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray(batch_sizes, "int64").tobytes())
    digest.update(np.asarray(batch_hashes, "int64").tobytes())
    return digest.hexdigest()


def _check_finite(dataset, argument):
    import tensorflow as tf

    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"`{argument}` is an infinite dataset (`repeat()`); a teacher cache needs one finite pass: "
            "cache the dataset before `repeat`, and let `fit(epochs=...)` repeat it."
        )


def _teacher_batches(teacher, x, batch_size):
    """`(inputs, teacher logits as NumPy, input hash or None)` per batch of `x`, and the fingerprint of `x`."""
    teachers = teacher if isinstance(teacher, (list, tuple)) else [teacher]
    if len(teachers) != 1:
        raise ValueError("A teacher cache is built from one teacher; cache an ensemble by caching its model.")
    model = teachers[0]
    if _is_dataset(x):
        _check_finite(x, "x")

        def from_dataset():
            for element in x:
                inputs, _, _ = unpack(_split_element(element)[0])
                yield inputs, to_numpy(model(inputs, training=False)), np.asarray(_batch_hash(inputs))

        return from_dataset(), None
    if _num_rows(x) == 0:
        raise ValueError("`x` holds no samples: there is nothing to cache.")

    def from_arrays():
        # A plain model runs through `predict` (one compiled function for every batch: the eager call
        # per batch cost more than the pass); a keras-hub task, whose `predict` would preprocess, is called.
        whole = None
        if getattr(model, "preprocessor", None) is None and not isinstance(x, dict):
            whole = np.asarray(to_numpy(model.predict(x, batch_size=batch_size, verbose=0)))
        for start in range(0, _num_rows(x), batch_size):
            inputs = _rows(x, start, start + batch_size)
            logits = whole[start : start + batch_size] if whole is not None else to_numpy(model(inputs, training=False))
            yield inputs, logits, None

    return from_arrays(), fingerprint(x)


def _collect(batches, convert):
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
    return stored, _dataset_fingerprint(sizes, hashes), sum(sizes), (sizes, np.stack(hashes))


class TeacherCache:
    """Teacher logits for every example of fixed inputs: NumPy arrays, or a finite `tf.data.Dataset`.

    Example:
    >>> cache = TeacherCache.build(teacher, x_train)          # one pass of the teacher
    >>> distiller.fit(x_train, y_train, epochs=10, teacher_cache=cache)
    >>> cache.save("teacher_logits.npz")                       # for large sets, or later runs

    With a dataset in a fixed order (batched, not reshuffled between passes):
    >>> dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).prefetch(tf.data.AUTOTUNE)
    >>> cache = TeacherCache.build(teacher, dataset)
    >>> distiller.fit(dataset, epochs=10, teacher_cache=cache)
    """

    def __init__(self, logits, input_fingerprint, num_examples, batch_sizes=None, batch_hashes=None):
        self._init_batches(
            {TEACHER_LOGITS_KEY: np.asarray(logits, dtype="float32")},
            input_fingerprint,
            num_examples,
            batch_sizes,
            batch_hashes,
        )

    def _init_batches(self, targets, input_fingerprint, num_examples, batch_sizes, batch_hashes):
        # `targets`: what the cache hands the Distiller per example, by input-dict key.
        self.targets = targets
        self.input_fingerprint = input_fingerprint
        self.num_examples = int(num_examples)
        # Built from a dataset: the size and input hashes of each batch, in order.
        self.batch_sizes = None if batch_sizes is None else np.asarray(batch_sizes, "int64")
        self.batch_hashes = None if batch_hashes is None else np.asarray(batch_hashes, "int64")
        for values in targets.values():
            if len(values) != self.num_examples:
                raise ValueError(f"The cache holds {len(values)} rows of teacher outputs for {num_examples} examples.")
        if self.batch_sizes is not None and int(self.batch_sizes.sum()) != self.num_examples:
            raise ValueError(
                f"The cache's batches hold {int(self.batch_sizes.sum())} examples, its logits {self.num_examples}."
            )

    @property
    def logits(self):
        """The teacher's logits, one row per example."""
        return self.targets[TEACHER_LOGITS_KEY]

    @logits.setter
    def logits(self, value):
        self.targets[TEACHER_LOGITS_KEY] = np.asarray(value, dtype="float32")

    @property
    def nbytes(self):
        """Memory the stored teacher outputs take."""
        return int(sum(values.nbytes for values in self.targets.values()))

    @property
    def from_dataset(self):
        """True if the cache was built from a `tf.data.Dataset` (batch by batch)."""
        return self.batch_sizes is not None

    @classmethod
    def build(cls, teacher, x, batch_size=256):
        """Run `teacher` once over `x` in inference mode.

        Args:
            teacher: one Keras model with logits outputs (cache an ensemble by caching its model).
            x: an array of inputs (or a dict of arrays, as keras-hub models take), or a finite
                `tf.data.Dataset` of batches `(x, y[, w])` or `x` in a fixed order; it is read
                once, batch by batch.
            batch_size: the teacher's batch size for arrays (a dataset keeps its own batches).
        """
        batches = _teacher_batches(teacher, x, batch_size)
        logits, fingerprint_, num_examples, dataset_batches = _collect(batches, lambda inputs, logits: logits)
        return cls(logits, fingerprint_, num_examples, *dataset_batches)

    def check(self, x, argument="x"):
        """Raise a ValueError unless `x` is the data this cache was built from (in the same order)."""
        if _is_dataset(x):
            return self._check_dataset(x, argument)
        if self.from_dataset:
            raise ValueError(
                f"The teacher cache was built from a tf.data.Dataset; `{argument}` is a "
                f"{type(x).__name__}: pass that dataset, or rebuild the cache from `{argument}`."
            )
        if not all(hasattr(leaf, "__len__") for _, leaf in _leaves(x)):
            raise ValueError(
                f"A teacher cache works with `{argument}` as the NumPy array (or dict of arrays) it was "
                f"built from, or a tf.data.Dataset; received {type(x).__name__}."
            )
        if _num_rows(x) != self.num_examples:
            raise ValueError(
                f"The teacher cache was built from {self.num_examples} examples, but `{argument}` has "
                f"{_num_rows(x)}: rebuild it with {type(self).__name__}.build(teacher, {argument})."
            )
        if fingerprint(x) != self.input_fingerprint:
            raise ValueError(
                f"The teacher cache was built from other data than `{argument}` (fingerprints "
                "differ, same size): rebuild it from these inputs, in this order."
            )

    def _check_dataset(self, dataset, argument):
        """One pass over `dataset` (inputs only, no teacher), compared batch by batch with the cache."""
        if not self.from_dataset:
            raise ValueError(
                f"The teacher cache was built from arrays; `{argument}` is a tf.data.Dataset: pass "
                f"those arrays, or rebuild the cache with TeacherCache.build(teacher, {argument})."
            )
        _check_finite(dataset, argument)
        count = 0
        for count, element in enumerate(dataset, start=1):
            if count > len(self.batch_sizes):
                break
            inputs, _, _ = unpack(_split_element(element)[0])
            size = _batch_size(inputs)
            if size != self.batch_sizes[count - 1] or not np.array_equal(
                np.asarray(_batch_hash(inputs)), self.batch_hashes[count - 1]
            ):
                raise ValueError(
                    f"The teacher cache was built from a dataset whose batch {count - 1} differs from batch "
                    f"{count - 1} of `{argument}` (other inputs, another order or other batch sizes). {_ORDER_FIX} "
                    f"If the data changed, rebuild the cache with TeacherCache.build(teacher, {argument})."
                )
        if count != len(self.batch_sizes):
            raise ValueError(
                f"The teacher cache was built from a dataset of {len(self.batch_sizes)} batches, but `{argument}` "
                f"yields {'more' if count > len(self.batch_sizes) else count}: rebuild the cache with "
                f"TeacherCache.build(teacher, {argument})."
            )

    def attach(self, x, argument="x"):
        """`x` (checked against this cache) packed with its teacher logits, for `Distiller.fit`.

        Arrays give `{"inputs": x, "teacher_logits": logits[, "index": ...]}`; a dataset gives a
        dataset whose `x` is that dict, batch by batch, each batch's inputs checked against the
        hash recorded when the cache was built (an error if they differ, e.g. after a reshuffle).
        """
        if _is_dataset(x):
            return self._attach_to_dataset(x, argument)
        inputs, _, indices = unpack(x)
        self.check(inputs, argument=argument)
        packed = {INPUTS_KEY: inputs, **self.targets}
        if indices is not None:
            packed[INDEX_KEY] = indices
        return packed

    def _attach_to_dataset(self, dataset, argument):
        import tensorflow as tf

        self._check_dataset(dataset, argument)
        batch_targets = self._batch_targets()
        offsets = np.concatenate([[0], np.cumsum(self.batch_sizes)[:-1]]).astype("int64")
        batches = tf.data.Dataset.from_tensor_slices((offsets, self.batch_sizes, self.batch_hashes))
        message = (
            f"A batch of `{argument}` differs from the one the teacher cache was built from: the dataset "
            f"yields another order (or other data) on this pass. {_ORDER_FIX}"
        )

        def pack(element, batch):
            offset, size, expected = batch
            x, rest = _split_element(element)
            inputs, _, indices = unpack(x)
            same = tf.debugging.assert_equal(_batch_hash(inputs), expected, message=message)
            with tf.control_dependencies([same]):
                packed = {INPUTS_KEY: inputs}
                packed.update({key: tf.identity(values) for key, values in batch_targets(offset, size).items()})
            if indices is not None:
                packed[INDEX_KEY] = indices
            return (packed, *rest) if rest else packed

        return tf.data.Dataset.zip((dataset, batches)).map(pack).prefetch(tf.data.AUTOTUNE)

    def _batch_targets(self):
        """`(offset, size) -> {target key: that batch's rows}` for a dataset's pipeline (held in memory here)."""
        import tensorflow as tf

        targets = {key: tf.constant(values) for key, values in self.targets.items()}
        return lambda offset, size: {key: values[offset : offset + size] for key, values in targets.items()}

    def save(self, path):
        """Write the cache to an `.npz` file (atomically: a temporary file, then a rename)."""
        extra = {"batch_sizes": self.batch_sizes, "batch_hashes": self.batch_hashes} if self.from_dataset else {}
        with atomic.replaced_file(path, suffix=".npz") as temporary:  # flushed to disk, then renamed
            np.savez(
                temporary,
                fingerprint=np.array(self.input_fingerprint),
                num_examples=np.array(self.num_examples),
                **self._saved_settings(),
                **{_SAVED_PREFIX + key: values for key, values in self.targets.items()},
                **extra,
            )

    def _saved_settings(self):
        return {}

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            batches = (data["batch_sizes"], data["batch_hashes"]) if "batch_sizes" in data else (None, None)
            targets = {key[len(_SAVED_PREFIX) :]: data[key] for key in data.files if key.startswith(_SAVED_PREFIX)}
            if "logits" in data.files:  # files written before top-k caches existed
                targets = {TEACHER_LOGITS_KEY: data["logits"]}
            settings = {key: data[key] for key in data.files if key.startswith("setting_")}
            return cls._from_saved(targets, str(data["fingerprint"]), int(data["num_examples"]), batches, settings)

    @classmethod
    def _from_saved(cls, targets, input_fingerprint, num_examples, batches, settings):
        if set(targets) != {TEACHER_LOGITS_KEY}:
            raise ValueError(
                f"This file holds a cache of {sorted(targets)}, not full logits: load it with TopKTeacherCache.load."
            )
        return cls(targets[TEACHER_LOGITS_KEY], input_fingerprint, num_examples, *batches)


def cached_teacher_logits(cached, student_logits):
    """`(teacher logits, student logits)` for the distillation loss from what a cache handed the step:
    its logits; a top-k cache's distribution rebuilt over the vocabulary; or, for its `tail="bucket"`
    form, both models' k + 1 classes (`keras_kd.top_k_cache.tail_bucket_logits`)."""
    if not isinstance(cached, dict):
        return ops.convert_to_tensor(cached), student_logits
    from keras_kd.top_k_cache import tail_bucket_logits, top_k_logits

    if cached["tail"] == "bucket":
        teacher, student = tail_bucket_logits(cached["probabilities"], cached["ids"], student_logits)
        return ops.stop_gradient(teacher), student
    return top_k_logits(cached["probabilities"], cached["ids"], student_logits.shape[-1]), student_logits


def attach_teacher_cache(distiller, x, y, cache, kwargs):
    """`(x, y, fit kwargs)` with `cache`'s teacher outputs packed in, for `Distiller.fit`.

    A `TeacherCache` holds logits on the original inputs, so it refuses a Distiller that augments
    each batch (use an `AugmentedTeacherCache`, which replays stored views) or has feature terms
    (they need the teacher to run); an `AugmentedTeacherCache` turns arrays into its own `tf.data`
    pipeline of views, and its views replace the Distiller's `augmentation`.
    """
    student_x, teacher_x = split_inputs(x)
    if student_x is not teacher_x:
        raise ValueError(
            "A teacher cache checks one set of inputs, but `x` gives each model its own ('student_inputs', "
            "'teacher_inputs'): drop `teacher_cache` (the teacher then runs on every step)."
        )
    if distiller.features:
        raise ValueError(
            "A teacher cache holds the teacher's outputs only, but this distiller has feature terms, "
            "which need the teacher to run. Drop the feature terms or `teacher_cache`."
        )
    if getattr(cache, "augmented", False):
        return cache.attach_for_fit(x, y, kwargs, temperature=distiller.temperature)
    if not isinstance(cache, TeacherCache):
        raise TypeError(
            f"`teacher_cache` must be a keras_kd.TeacherCache or AugmentedTeacherCache; received "
            f"{type(cache).__name__}."
        )
    from keras_kd.tokens import vocabulary_size

    student_size = vocabulary_size(distiller.student)
    cached_size = getattr(cache, "num_classes", None)
    if None not in (cached_size, student_size) and cached_size != student_size:
        raise ValueError(
            f"The top-k cache was built over {cached_size} classes but the student outputs {student_size}: its "
            "token ids index the student's distribution. Build the cache from a teacher of the student's vocabulary."
        )
    if distiller.augmentation is not None:
        raise ValueError(
            "A teacher cache holds the teacher's logits on the original inputs, but this distiller augments each "
            "batch (function matching: the teacher must see the augmented view). Build a "
            "keras_kd.AugmentedTeacherCache (stored views, replayed), or drop `augmentation` or `teacher_cache`."
        )
    if getattr(cache, "directory", None) is not None and not _is_dataset(x):  # a top-k cache on disk
        from keras_kd import top_k_disk

        return top_k_disk.reader_for_fit(cache, x, y, kwargs)
    return cache.attach(x, argument="x"), y, kwargs
