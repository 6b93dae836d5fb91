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

import numpy as np

from keras_kd import atomic
from keras_kd.data.keys import INDEX_KEY, INPUTS_KEY, TEACHER_LOGITS_KEY, unpack
from keras_kd.teacher.batches import (
    ORDER_FIX,
    batch_hash,
    batch_length,
    check_finite,
    collect,
    fingerprint,
    is_dataset,
    named_leaves,
    num_rows,
    split_element,
    teacher_batches,
)

_SAVED_PREFIX = "target_"  # the stored outputs' keys in a saved file


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
        batches = teacher_batches(teacher, x, batch_size)
        logits, fingerprint_, num_examples, dataset_batches = collect(batches, lambda inputs, logits: logits)
        return cls(logits, fingerprint_, num_examples, *dataset_batches)

    def check(self, x, argument="x"):
        """Raise a ValueError unless `x` is the data this cache was built from (in the same order)."""
        if is_dataset(x):
            return self._check_dataset(x, argument)
        if self.from_dataset:
            raise ValueError(
                f"The teacher cache was built from a tf.data.Dataset; `{argument}` is a "
                f"{type(x).__name__}: pass that dataset, or rebuild the cache from `{argument}`."
            )
        if not all(hasattr(leaf, "__len__") for _, leaf in named_leaves(x)):
            raise ValueError(
                f"A teacher cache works with `{argument}` as the NumPy array (or dict of arrays) it was "
                f"built from, or a tf.data.Dataset; received {type(x).__name__}."
            )
        if num_rows(x) != self.num_examples:
            raise ValueError(
                f"The teacher cache was built from {self.num_examples} examples, but `{argument}` has "
                f"{num_rows(x)}: rebuild it with {type(self).__name__}.build(teacher, {argument})."
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
        check_finite(dataset, argument)
        count = 0
        for count, element in enumerate(dataset, start=1):
            if count > len(self.batch_sizes):
                break
            inputs, _, _ = unpack(split_element(element)[0])
            size = batch_length(inputs)
            if size != self.batch_sizes[count - 1] or not np.array_equal(
                np.asarray(batch_hash(inputs)), self.batch_hashes[count - 1]
            ):
                raise ValueError(
                    f"The teacher cache was built from a dataset whose batch {count - 1} differs from batch "
                    f"{count - 1} of `{argument}` (other inputs, another order or other batch sizes). {ORDER_FIX} "
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
        if is_dataset(x):
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
            f"yields another order (or other data) on this pass. {ORDER_FIX}"
        )

        def pack(element, batch):
            offset, size, expected = batch
            x, rest = split_element(element)
            inputs, _, indices = unpack(x)
            same = tf.debugging.assert_equal(batch_hash(inputs), expected, message=message)
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
