"""`AugmentedTeacherCache`: the teacher's soft labels for a fixed set of augmented views of every example.

Function matching (and any distillation with random augmentation) needs the teacher's output on
the view the student sees, so a plain `TeacherCache` cannot serve it. As in FKD (Shen and Xing,
"A Fast Knowledge Distillation Framework for Visual Recognition", 2021), this cache draws
`views` augmentations of each example once, stores each view's parameters (a mix-up partner and
weight, or a crop offset and a flip) and the teacher's top-k probabilities on it, and replays
those same views during training: each epoch, every example is shown as one of its stored views,
rebuilt from the stored parameters in the `tf.data` pipeline (bit for bit the input the teacher
saw), next to its soft labels. The teacher does not run during training.

Storage per example and view: the `top_k` largest probabilities of `softmax(logits / T)`
(float16) and their classes (int16); the rest of the mass is spread evenly over the other
classes when the labels are replayed. The KD loss then moves, relative to the full teacher's, by
less than half the mass left out (`dropped_mass`; measured 0.25-0.4x of it in
`tests/test_augmented_cache.py`); the benchmark's figures are in docs/speed_benchmark.md.

The replayed labels enter the Distiller as logits `T * log(p)` with `softmax(logits / T) = p`,
so every softmax-based distillation loss (KD, DKD, DIST, a Keras KL on probabilities) reads the
cached distribution unchanged; the cache is built for one temperature, and `fit` refuses a
Distiller compiled with another.

The views are made with TensorFlow ops inside `tf.data` (the input pipeline every backend
consumes), so the cache trains on Keras 3 with TensorFlow, JAX or PyTorch, and on tf_keras.
"""

import json

import numpy as np

from keras_kd import atomic
from keras_kd.checks import validate_temperature
from keras_kd.data.keys import INPUTS_KEY, TEACHER_LOGITS_KEY
from keras_kd.teacher.batches import (
    ORDER_FIX,
    batch_hash,
    check_finite,
    dataset_fingerprint,
    fingerprint,
    is_dataset,
    split_element,
)
from keras_kd.teacher.precision import TeacherPass
from keras_kd.teacher.views import VIEWS, CropFlipViews, MixUpViews  # noqa: F401 (the views, re-exported)

_FLOOR = 1e-12  # smallest replayed probability (log stays finite)


def _tf():
    import tensorflow as tf

    return tf


def soft_logits(probabilities, classes, num_classes, temperature):
    """Logits `T * log(p)` of the distribution with `probabilities` at `classes`, the rest spread evenly."""
    tf = _tf()
    probabilities = tf.cast(probabilities, "float32")
    top_k = probabilities.shape[-1]
    rest = tf.maximum(1.0 - tf.reduce_sum(probabilities, -1, keepdims=True), 0.0) / max(num_classes - top_k, 1)
    full = tf.zeros(tf.concat([tf.shape(probabilities)[:-1], [num_classes]], 0)) + rest
    # Put the top-k values in place: one-hot rows times (p - rest), added to the even rest.
    full += tf.reduce_sum(tf.one_hot(tf.cast(classes, "int32"), num_classes) * (probabilities - rest)[..., None], -2)
    return temperature * tf.math.log(tf.maximum(full, _FLOOR))


class AugmentedTeacherCache:
    """Top-k soft labels of the teacher on `views` stored augmentations of every example, replayed in training.

    Example:
    >>> cache = AugmentedTeacherCache.build(teacher, x_train, MixUpViews(), views=8, top_k=5, temperature=1.0)
    >>> distiller.compile(optimizer="adam", recipe="function_matching")  # alpha 0, T 1
    >>> distiller.fit(x_train, y_train, epochs=30, batch_size=128, teacher_cache=cache)
    >>> cache.save("fm_cache.npz")

    `fit` then reads a `tf.data` pipeline (shuffled each epoch for arrays, parallel view making,
    prefetched) in which each example appears as one of its views, drawn at random each epoch.
    A Distiller's own `augmentation` is not applied on top: the cache's views replace it.
    """

    augmented = True

    def __init__(
        self,
        augmentation,
        params,
        probabilities,
        classes,
        num_classes,
        temperature,
        input_fingerprint,
        num_examples,
        batch_sizes=None,
        batch_hashes=None,
        seed=0,
    ):
        self.augmentation = augmentation
        self.params = {key: np.asarray(value) for key, value in params.items()}
        self.probabilities = np.asarray(probabilities, "float16")
        self.classes = np.asarray(classes, "int16")
        self.num_classes, self.temperature = int(num_classes), float(temperature)
        self.input_fingerprint, self.num_examples, self.seed = input_fingerprint, int(num_examples), int(seed)
        self.batch_sizes = None if batch_sizes is None else np.asarray(batch_sizes, "int64")
        self.batch_hashes = None if batch_hashes is None else np.asarray(batch_hashes, "int64")
        if self.probabilities.shape[0] != self.num_examples:
            raise ValueError(
                f"The cache holds soft labels of {self.probabilities.shape[0]} examples, not {num_examples}."
            )

    @property
    def views(self):
        return self.probabilities.shape[1]

    @property
    def top_k(self):
        return self.probabilities.shape[2]

    @property
    def from_dataset(self):
        return self.batch_sizes is not None

    @property
    def dropped_mass(self):
        """The mean probability mass outside the stored top-k (replayed as one even bucket)."""
        return float(1.0 - self.probabilities.astype("float32").sum(-1).mean())

    # Building ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls, teacher, x, augmentation, views=4, top_k=5, temperature=1.0, batch_size=512, seed=0, teacher_dtype=None
    ):
        """One streaming pass: every view of every batch through the teacher, top-k kept.

        Args:
            teacher: one Keras model with logits outputs.
            x: an array of inputs, or a finite `tf.data.Dataset` of `(x, y[, w])` or `x` batches in
                a fixed order (mix-up partners are then drawn within each batch).
            augmentation: `MixUpViews(...)` or `CropFlipViews(...)`.
            views: stored views per example.
            top_k: probabilities kept per view (the rest of the mass is one even bucket).
            temperature: the distillation temperature the Distiller is compiled with.
            batch_size: the teacher's batch for arrays (larger than training's: it runs once).
            seed: seeds the views' parameters.
            teacher_dtype: run a `"bfloat16"` copy of the teacher (`keras_kd.teacher.precision`).
        """
        validate_temperature(temperature, "temperature")
        if views < 1 or top_k < 1:
            raise ValueError(f"Need views >= 1 and top_k >= 1; received {views} and {top_k}.")
        if type(augmentation).__name__ not in VIEWS:
            raise TypeError(
                f"`augmentation` must be one of {sorted(VIEWS)} (views replayable from stored "
                f"parameters); received {type(augmentation).__name__}."
            )
        run = TeacherPass([teacher], teacher_dtype)
        rng = np.random.default_rng(seed)
        if is_dataset(x):
            return cls._build_from_dataset(run, x, augmentation, views, top_k, temperature, rng, seed)
        x = np.asarray(x)
        if len(x) == 0:
            raise ValueError("`x` holds no samples: there is nothing to cache.")
        params = augmentation.sample(rng, (len(x), views), len(x))
        source = _tf().constant(x)
        chunks = [
            cls._soft_labels(
                run,
                [cls._make_view(augmentation, source, rows, params, v, None)[0] for v in range(views)],
                top_k,
                temperature,
            )
            for rows in np.array_split(np.arange(len(x)), max(1, -(-len(x) // batch_size)))
        ]
        probabilities, classes = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
        return cls(
            augmentation, params, probabilities, classes, chunks[0][2], temperature, fingerprint(x), len(x), seed=seed
        )

    @staticmethod
    def _make_view(augmentation, source, rows, params, view, batch):
        """View `view` of examples `rows` (global indices), from `source` (all inputs) or `batch` (those rows)."""
        tf = _tf()
        rows = tf.convert_to_tensor(rows, "int64")
        view = tf.broadcast_to(tf.cast(view, "int64"), tf.shape(rows))
        where = tf.stack([rows, view], 1)
        picked = {key: tf.gather_nd(tf.constant(value), where) for key, value in params.items()}
        inputs = tf.gather(source, rows) if batch is None else batch
        partner = None
        if "partner" in picked:
            partner = tf.gather(source, picked["partner"]) if batch is None else tf.gather(batch, picked["partner"])
        return augmentation.apply(inputs, picked, partner), where

    @staticmethod
    def _soft_labels(run, views, top_k, temperature):
        """`(top-k probabilities (N, V, k), their classes, num_classes)`: the views go through the teacher together."""
        size = int(views[0].shape[0])
        logits = _numpy(run(0, np.concatenate([np.asarray(v) for v in views]))).astype("float64") / temperature
        logits = logits.reshape(len(views), size, -1).transpose(1, 0, 2)
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        k = min(top_k, logits.shape[-1])
        classes = np.argsort(-probabilities, axis=-1, kind="stable")[..., :k]
        return np.take_along_axis(probabilities, classes, -1), classes, logits.shape[-1]

    @classmethod
    def _build_from_dataset(cls, run, dataset, augmentation, views, top_k, temperature, rng, seed):
        tf = _tf()
        check_finite(dataset, "x")
        probabilities, classes, sizes, hashes, params, num_classes = [], [], [], [], [], None
        for element in dataset:
            inputs = split_element(element)[0]
            if isinstance(inputs, dict):
                raise ValueError("AugmentedTeacherCache takes datasets whose `x` is one tensor of inputs.")
            size = int(tf.shape(inputs)[0])
            batch_params = augmentation.sample(rng, (size, views), size)  # partners within the batch
            top, top_classes, num_classes = cls._soft_labels(
                run,
                [cls._make_view(augmentation, None, np.arange(size), batch_params, v, inputs)[0] for v in range(views)],
                top_k,
                temperature,
            )
            probabilities.append(top)
            classes.append(top_classes)
            sizes.append(size)
            hashes.append(np.asarray(batch_hash(inputs)))
            params.append(batch_params)
        if not sizes:
            raise ValueError("`x` holds no samples: there is nothing to cache.")
        params = {key: np.concatenate([p[key] for p in params]) for key in params[0]}
        return cls(
            augmentation,
            params,
            np.concatenate(probabilities),
            np.concatenate(classes),
            num_classes,
            temperature,
            dataset_fingerprint(sizes, hashes),
            sum(sizes),
            sizes,
            np.stack(hashes),
            seed=seed,
        )

    # Replaying --------------------------------------------------------------------------
    def _check_temperature(self, temperature):
        if temperature is not None and abs(float(temperature) - self.temperature) > 1e-6:
            raise ValueError(
                f"The augmented teacher cache holds the teacher's probabilities at temperature "
                f"{self.temperature}, but the Distiller is compiled with {temperature}: compile with "
                f"temperature={self.temperature}, or rebuild the cache at {temperature}."
            )

    def _labels(self, where):
        tf = _tf()
        probabilities = tf.gather_nd(tf.constant(self.probabilities), where)
        classes = tf.gather_nd(tf.constant(self.classes), where)
        return soft_logits(probabilities, classes, self.num_classes, self.temperature)

    def dataset(self, x, y=None, batch_size=32, shuffle=True, seed=None, view=None):
        """The training pipeline: `({"inputs": view, "teacher_logits": ...}, y)` batches, prefetched.

        Args:
            x, y: the arrays (or the dataset, with `y=None`) the cache was built from.
            batch_size, shuffle: for arrays (a dataset keeps its own batches and order).
            view: replay this view index for every example (default: one drawn at random per
                example and epoch).
        """
        tf = _tf()
        if is_dataset(x):
            return self._dataset_pipeline(x, view)
        x = np.asarray(x)
        if self.from_dataset:
            raise ValueError("The augmented cache was built from a tf.data.Dataset; pass that dataset, or rebuild it.")
        if len(x) != self.num_examples or fingerprint(x) != self.input_fingerprint:
            raise ValueError(
                f"The augmented teacher cache was built from other inputs than these ({len(x)} examples; "
                f"cache: {self.num_examples}): rebuild it with AugmentedTeacherCache.build."
            )
        source = tf.constant(x)
        labels = None if y is None else tf.constant(np.asarray(y))
        rows = tf.data.Dataset.range(self.num_examples)
        if shuffle:
            rows = rows.shuffle(self.num_examples, seed=seed, reshuffle_each_iteration=True)

        def make(indices):
            chosen = self._choose_views(indices, view, seed)
            inputs, where = self._make_view(self.augmentation, source, indices, self.params, chosen, None)
            packed = {INPUTS_KEY: inputs, TEACHER_LOGITS_KEY: self._labels(where)}
            return packed if labels is None else (packed, tf.gather(labels, indices))

        return rows.batch(batch_size).map(make, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def _choose_views(self, indices, view, seed):
        tf = _tf()
        if view is not None:
            return tf.fill(tf.shape(indices), tf.constant(int(view), "int64"))
        return tf.random.uniform(tf.shape(indices), 0, self.views, dtype="int64", seed=seed)

    def _dataset_pipeline(self, dataset, view):
        tf = _tf()
        if not self.from_dataset:
            raise ValueError("The augmented cache was built from arrays; pass those arrays, or rebuild it.")
        check_finite(dataset, "x")
        offsets = np.concatenate([[0], np.cumsum(self.batch_sizes)[:-1]]).astype("int64")
        table = tf.data.Dataset.from_tensor_slices((offsets, self.batch_sizes, self.batch_hashes))
        message = f"A batch differs from the one the augmented teacher cache was built from. {ORDER_FIX}"

        def make(element, batch):
            offset, size, expected = batch
            inputs, rest = split_element(element)
            same = tf.debugging.assert_equal(batch_hash(inputs), expected, message=message)
            rows = offset + tf.range(size, dtype="int64")
            chosen = self._choose_views(rows, view, None)
            where = tf.stack([rows, chosen], 1)
            picked = {key: tf.gather_nd(tf.constant(value), where) for key, value in self.params.items()}
            partner = tf.gather(inputs, picked["partner"]) if "partner" in picked else None
            with tf.control_dependencies([same]):
                packed = {
                    INPUTS_KEY: self.augmentation.apply(inputs, picked, partner),
                    TEACHER_LOGITS_KEY: self._labels(where),
                }
            return (packed, *rest) if rest else packed

        pairs = tf.data.Dataset.zip((dataset, table))
        return pairs.map(make, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def attach_for_fit(self, x, y, kwargs, temperature=None):
        """`(dataset, None, fit kwargs)` for `Distiller.fit`: arrays' batching and shuffling move into the pipeline."""
        self._check_temperature(temperature)
        kwargs = dict(kwargs)
        if kwargs.get("sample_weight") is not None or kwargs.get("class_weight") is not None:
            raise ValueError("An augmented teacher cache does not take `sample_weight`/`class_weight`.")
        shuffle = kwargs.pop("shuffle", True)  # arrays: shuffled in the pipeline; a dataset keeps its order
        if is_dataset(x):
            return self.dataset(x), None, {**kwargs, "shuffle": False}
        batch_size = kwargs.pop("batch_size", None) or 32
        return self.dataset(x, y, batch_size=batch_size, shuffle=bool(shuffle)), None, {**kwargs, "shuffle": False}

    # Saving -----------------------------------------------------------------------------
    def save(self, path):
        """Write the cache to an `.npz` file atomically (`keras_kd.atomic`: a temporary file, flushed, renamed)."""
        meta = {
            "augmentation": type(self.augmentation).__name__,
            "config": self.augmentation.get_config(),
            "num_classes": self.num_classes,
            "temperature": self.temperature,
            "seed": self.seed,
            "fingerprint": self.input_fingerprint,
            "num_examples": self.num_examples,
        }
        extra = {"batch_sizes": self.batch_sizes, "batch_hashes": self.batch_hashes} if self.from_dataset else {}
        params = {f"param_{key}": value for key, value in self.params.items()}
        with atomic.replaced_file(path, suffix=".npz") as temporary:
            np.savez(
                temporary,
                meta=np.array(json.dumps(meta)),
                probabilities=self.probabilities,
                classes=self.classes,
                **params,
                **extra,
            )

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            params = {key[len("param_") :]: data[key] for key in data.files if key.startswith("param_")}
            batches = (data["batch_sizes"], data["batch_hashes"]) if "batch_sizes" in data.files else (None, None)
            return cls(
                VIEWS[meta["augmentation"]](**meta["config"]),
                params,
                data["probabilities"],
                data["classes"],
                meta["num_classes"],
                meta["temperature"],
                meta["fingerprint"],
                meta["num_examples"],
                *batches,
                seed=meta["seed"],
            )


def _numpy(x):
    from keras_kd.backend import to_numpy

    return to_numpy(x)
