"""Accuracy, saved size and CPU latency of a Keras model, measured the same way for every row."""

import os
import statistics
import tempfile
import time

import numpy as np

from keras_kd import atomic
from keras_kd.backend import is_tensorflow_backed, to_numpy


def accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of `model`'s logits against integer labels `y`."""
    # Direct calls rather than `predict`, which retraces (and warns) for every new model.
    logits = np.concatenate(
        [to_numpy(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    )
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y).reshape(-1)))


def shippable(model):
    """`model` as it ships: architecture, weights and assets, without optimizer or compile state.

    A round trip through a `.keras` file loaded with `compile=False`: a copy rebuilt from the
    config (`copy_model`) loses state that is not a weight, such as an adapted TextVectorization's
    vocabulary, and its saved file would not load.
    """
    from keras_kd.backend import keras

    with tempfile.TemporaryDirectory() as folder:
        staged = os.path.join(folder, "staged.keras")
        model.save(staged)
        return keras.models.load_model(staged, compile=False)


def model_file_size(model, path=None):
    """Bytes of `model`'s weights and architecture in the native `.keras` format, no optimizer.

    Saved to `path` when given, else to a temporary file.
    """
    model = shippable(model)
    if path is not None:
        atomic.save_model(model, path)  # a killed run leaves the previous file whole
        return os.path.getsize(path)
    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "model.keras")
        model.save(target)
        return os.path.getsize(target)


def latency_ms(model, example, runs=50, warmup=5):
    """Median milliseconds of one inference call at the batch size of `example` on this CPU.

    The call is traced once (a `tf.function` on TensorFlow) so that the figure is the
    model's compute, not Python dispatch; warm-up calls are excluded. `example` is an
    array, or a dict of arrays for a model with named inputs.
    """
    example = {k: np.asarray(v) for k, v in example.items()} if isinstance(example, dict) else np.asarray(example)
    if is_tensorflow_backed():
        import tensorflow as tf

        forward = tf.function(lambda inputs: model(inputs, training=False))
        inputs = tf.nest.map_structure(tf.constant, example)
    else:
        forward = lambda inputs: model(inputs, training=False)  # noqa: E731
        inputs = example
    for _ in range(warmup):
        to_numpy(forward(inputs))
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        to_numpy(forward(inputs))
        timings.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(timings)


def measure_model(name, model, x_test, y_test, path=None):
    """`model`'s report row: parameters, saved size (the `.keras` file is kept at `path` when given),
    test accuracy and latency at batch 1."""
    from keras_kd.jobs.report.writer import ModelRow
    from keras_kd.utils import count_params

    return ModelRow(
        name,
        count_params(model),
        model_file_size(model, path),
        accuracy(model, x_test, y_test),
        latency_ms(model, x_test[:1]),
        model.name,
    )
