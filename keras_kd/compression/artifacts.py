"""Measure exported artifacts as they will run: size on disk (and gzip'd), accuracy and CPU latency.

SavedModels run through `tf.saved_model.load` and their serving signature; TFLite files
through the TFLite interpreter (inputs quantized for int8-input models). Latency is the
median of repeated calls at batch 1 and at batch 64, after warm-up.
"""

import gzip
import io
import os
import statistics
import tarfile
import time

import numpy as np


def artifact_bytes(path):
    """Bytes of a file, or of every file under a folder."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def gzip_bytes(path):
    """Bytes after gzip (a tar of the folder for a SavedModel): what pruning's zeros save in transit."""
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            return len(gzip.compress(handle.read(), compresslevel=9))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(path, arcname=".")
    return len(gzip.compress(buffer.getvalue(), compresslevel=9))


def _median_ms(call, runs=30, warmup=3):
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(timings)


def make_interpreter(path):
    """LiteRT's interpreter (`ai-edge-litert`): the runtime that phones and boards run a .tflite file
    with, which replaces TensorFlow's deprecated `tf.lite.Interpreter`."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path, num_threads=os.cpu_count())


def output_quantization_step(path):
    """The value of one int8 step of a TFLite file's output (its scale), or None for a float output.

    An int8 model's output is an int8 tensor, dequantized in the graph when its input and output
    stay float: an error of a step or two against the Keras model is rounding; more is a fault.
    """
    interpreter = make_interpreter(path)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]
    if output["dtype"] == np.int8:
        return float(output["quantization"][0])
    for op in interpreter._get_ops_details():  # the DEQUANTIZE that makes the float output
        if op["op_name"] == "DEQUANTIZE" and output["index"] in list(op["outputs"]):
            scale = interpreter._get_tensor_details(int(op["inputs"][0]), 0)["quantization"][0]
            return float(scale)
    return None


class SavedModelRunner:
    """Calls an exported SavedModel's serving signature on NumPy batches.

    Args:
        path: the SavedModel folder written by `keras_kd.compression.export`.

    Calling the runner with a float batch returns the logits as a NumPy array.
    """

    def __init__(self, path: str):
        import tensorflow as tf

        from keras_kd.compression.export import INPUT_NAME, OUTPUT_NAME, SIGNATURE

        self._tf = tf
        self._function = tf.saved_model.load(path).signatures[SIGNATURE]
        self._input, self._output = INPUT_NAME, OUTPUT_NAME

    def __call__(self, batch):
        return self._function(**{self._input: self._tf.constant(batch, self._tf.float32)})[self._output].numpy()


class TFLiteRunner:
    """Runs a TFLite file on NumPy batches through the TFLite interpreter.

    The input tensor is resized to each batch's length; int8 inputs and outputs are
    quantized and dequantized with the file's own scale and zero point, so the runner takes
    and returns float32 values whatever the file's types.

    Args:
        path: the `.tflite` file.
    """

    def __init__(self, path: str):
        self._interpreter = make_interpreter(path)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    def __call__(self, batch):
        batch = np.asarray(batch, dtype="float32")
        if self._batch != len(batch):
            self._interpreter.resize_tensor_input(self._input["index"], (len(batch),) + batch.shape[1:])
            self._interpreter.allocate_tensors()
            self._batch = len(batch)
        if self._input["dtype"] == np.int8:
            scale, zero_point = self._input["quantization"]
            batch = np.clip(np.round(batch / scale + zero_point), -128, 127).astype(np.int8)
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output["index"])
        if self._output["dtype"] == np.int8:
            scale, zero_point = self._output["quantization"]
            out = (out.astype("float32") - zero_point) * scale
        return out


def measure(path, kind, x_test, y_test, batch_size=64):
    """`{"size_bytes", "gzip_bytes", "accuracy", "latency_ms_batch1", "latency_ms_batch64"}` of an artifact."""
    runner = SavedModelRunner(path) if kind == "saved_model" else TFLiteRunner(path)
    predictions = []
    for start in range(0, len(x_test), batch_size):
        predictions.append(np.argmax(runner(x_test[start : start + batch_size]), axis=-1))
    accuracy = float(np.mean(np.concatenate(predictions) == np.asarray(y_test).reshape(-1)))
    single, batch = x_test[:1], x_test[:batch_size]
    return {
        "size_bytes": artifact_bytes(path),
        "gzip_bytes": gzip_bytes(path),
        "accuracy": accuracy,
        "latency_ms_batch1": _median_ms(lambda: runner(single)),
        "latency_ms_batch64": _median_ms(lambda: runner(batch)),
    }
