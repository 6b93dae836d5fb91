"""Arrays to a `tf.data` pipeline that keeps the step fed: shuffled, batched, augmented in parallel, prefetched.

`make_dataset(x, y, batch_size=128, augmentation=layer)` is what `Distiller.fit(x, y)` would
build from arrays, with the augmentation moved out of the step: it runs on `tf.data`'s threads
(`num_parallel_calls=AUTOTUNE`) while the previous step trains, and teacher and student then
read the same augmented batch (compile the Distiller with `augmentation=None`). Every backend
consumes a `tf.data.Dataset` (Keras 3 on TensorFlow, JAX and PyTorch, and tf_keras), so this is
one pipeline for all of them. An `AugmentedTeacherCache` builds its own pipeline the same way.

What the profiler showed is in `docs/speed_benchmark.md` (benchmarks/pipeline_profile.py).
"""

import numpy as np


def _tf():
    import tensorflow as tf

    return tf


def make_dataset(
    x,
    y=None,
    sample_weight=None,
    batch_size=32,
    shuffle=True,
    augmentation=None,
    seed=None,
    drop_remainder=False,
    parallel_calls=None,
):
    """A prefetched `tf.data.Dataset` of `(x, y[, sample_weight])` batches from arrays.

    Args:
        x: an array of inputs, or a dict of arrays (e.g. `with_indices(x)`).
        y, sample_weight: arrays of labels and weights, or None.
        batch_size: examples per batch.
        shuffle: reshuffle the examples on every pass (epoch).
        augmentation: a Keras preprocessing layer or a function of a batch of inputs, applied
            on `tf.data`'s worker threads, in parallel, `training=True` for layers; for a dict
            of inputs it is applied to the `"inputs"` entry.
        seed: seed of the shuffle.
        drop_remainder: drop a last, smaller batch.
        parallel_calls: threads for the augmentation (default `tf.data.AUTOTUNE`).

    Returns:
        A `tf.data.Dataset` for `fit(dataset, epochs=...)`, with autotuned prefetching.

    Raises:
        ValueError: no examples, or arrays of different lengths.
    """
    tf = _tf()
    parts = [part for part in (x, y, sample_weight) if part is not None]
    lengths = {len(next(iter(part.values()))) if isinstance(part, dict) else len(part) for part in parts}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"`x`, `y` and `sample_weight` must hold the same, nonzero number of examples; got {lengths}.")
    count = lengths.pop()
    rows = tuple(part if isinstance(part, dict) else np.asarray(part) for part in parts)
    dataset = tf.data.Dataset.from_tensor_slices(rows if len(rows) > 1 else rows[0])
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if augmentation is not None:
        _check_runs_in_tf_data(augmentation)
        dataset = dataset.map(
            _augmenter(augmentation, several=len(rows) > 1),
            num_parallel_calls=parallel_calls or tf.data.AUTOTUNE,
            deterministic=True,  # batches in order (parallel all the same): shuffle=False keeps it
        )
    options = tf.data.Options()
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _check_runs_in_tf_data(augmentation):
    """Keras 3 on JAX or PyTorch runs only its preprocessing layers (`TFDataLayer`s) inside `tf.data`."""
    from keras_kd import backend

    if backend.is_tensorflow_backed() or not isinstance(augmentation, backend.keras.layers.Layer):
        return
    # Keras's base class of such layers: DataLayer (3.10 and later), TFDataLayer before.
    if not any(cls.__name__ in ("DataLayer", "TFDataLayer") for cls in type(augmentation).__mro__):
        raise TypeError(
            f"`{type(augmentation).__name__}` cannot run inside tf.data on the {backend.BACKEND} backend (only Keras "
            "preprocessing layers such as RandomFlip, RandomCrop or MixUp switch to TensorFlow there). Use one of "
            "those, a function of TensorFlow ops, or the Distiller's `augmentation` (applied inside the step)."
        )


def _augmenter(augmentation, several):
    def augment_inputs(inputs):
        if isinstance(inputs, dict):
            return {**inputs, "inputs": augment_inputs(inputs["inputs"])}
        if hasattr(augmentation, "get_config"):  # a Keras layer
            return augmentation(inputs, training=True)
        return augmentation(inputs)

    def augment(*element):
        if not several:
            return augment_inputs(element[0])
        return (augment_inputs(element[0]), *element[1:])

    return augment
