"""Export the student alone: TF Serving SavedModels (atomic, versioned) and TFLite files.

SavedModel signature `serving_default`: input `inputs` (float32, `(batch,) + input shape`),
output `logits` (float32, `(batch, classes)`). A language model exports with
`signature="next_token"` instead: inputs `token_ids` and `padding_mask` (int32, `(batch, time)`,
keras-hub's preprocessed form), outputs `next_token_probabilities` (float32, `(batch,
vocabulary)`, after the last real token of each row) and `next_token` (int32, its argmax):
one generation step, which a server or a client loop repeats. TF Serving watches `BASE/NAME/` and serves
the highest integer version folder; a version is written under a hidden temporary name and
renamed into place, so a watching server never sees half of it, and an existing version is
never overwritten.
"""

import os
import re
import shutil
import tempfile

import numpy as np

from keras_kd import atomic
from keras_kd.backend import IS_TF_KERAS, assert_tensorflow_backend

TFLITE_MODES = ("float32", "float16", "dynamic", "int8")
SIGNATURE = "serving_default"
INPUT_NAME = "inputs"
OUTPUT_NAME = "logits"


def next_version(model_dir):
    """One more than the highest integer version folder in `model_dir` (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name)]
    return max(versions, default=0) + 1


def _input_spec(model):
    import tensorflow as tf

    shape = model.inputs[0].shape if getattr(model, "inputs", None) else model.input_shape
    return tf.TensorSpec((None,) + tuple(shape[1:]), tf.float32, name=INPUT_NAME)


def _logits_function(model):
    import tensorflow as tf

    return tf.function(
        lambda inputs: {OUTPUT_NAME: model(inputs, training=False)}, input_signature=[_input_spec(model)]
    )


def _next_token_function(model):
    """Token ids and padding mask in; the distribution after each row's last real token out."""
    import tensorflow as tf

    specs = [tf.TensorSpec((None, None), tf.int32, name=name) for name in ("token_ids", "padding_mask")]

    def next_token(token_ids, padding_mask):
        logits = model({"token_ids": token_ids, "padding_mask": padding_mask}, training=False)
        last = tf.maximum(tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1) - 1, 0)
        probabilities = tf.nn.softmax(tf.cast(tf.gather(logits, last, batch_dims=1), tf.float32))
        return {"next_token_probabilities": probabilities, "next_token": tf.argmax(probabilities, -1, tf.int32)}

    return tf.function(next_token, input_signature=specs)


SIGNATURES = {"logits": _logits_function, "next_token": _next_token_function}


def _write_saved_model(model, path, signature="logits"):
    """A SavedModel of `model` (inference mode) with the documented signature."""
    import tensorflow as tf

    # A plain tf.Module that tracks the model's variables, each once (Keras 3's ExportArchive
    # stores every weight twice), and the serving function: no optimizer state rides along.
    module = tf.Module()
    module.weights_ = [v if IS_TF_KERAS else v.value for v in model.variables]
    serve = SIGNATURES[signature](model)
    module.serve = serve
    tf.saved_model.save(module, path, signatures={SIGNATURE: serve})


def export_saved_model(model, base_dir, name="student", version=None, signature="logits"):
    """Write `model` to `base_dir/name/version/` for TF Serving and return that path.

    Args:
        model: the student (never a Distiller: pass `distiller.student`; TF-MOT wrappers must
            be stripped first, see `keras_kd.compression.tfmot.strip`).
        base_dir: TF Serving's model base path.
        name: the model's name (a folder under `base_dir`).
        version: a positive integer; default the next free version.
        signature: `"logits"` (classifiers) or `"next_token"` (causal language models).

    Raises:
        ValueError: `base_dir` is a file, the version exists, or a Distiller was passed.
        RuntimeError: a Keras 3 backend other than TensorFlow (the message says how to export).
    """
    _check_exportable(model, "SavedModel export")
    if signature not in SIGNATURES:
        raise ValueError(f"Unknown signature {signature!r}; expected one of {sorted(SIGNATURES)}.")
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(f"Export path {base_dir!r} is a file; give a folder for TF Serving's base path.")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"Model name {name!r} must be letters, digits, '_', '.' or '-'.")
    model_dir = os.path.join(base_dir, name)
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"`version` must be a positive integer; received {version!r}.")
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target):
        raise ValueError(f"Version {version} already exists at {target!r}; versions are never overwritten.")
    os.makedirs(model_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".partial-", dir=model_dir)  # not an integer: TF Serving ignores it
    try:
        _write_saved_model(model, os.path.join(staging, "model"), signature)
        os.rename(os.path.join(staging, "model"), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_exportable(model, feature):
    assert_tensorflow_backend(feature)
    if hasattr(model, "teachers") and hasattr(model, "student"):  # a Distiller
        raise ValueError("Export the student alone (`distiller.student`), not the Distiller with its teacher.")
    # Pruning and clustering wrappers are training-time only; QAT wrappers are meant to export.
    wrapped = [
        layer.name
        for layer in getattr(model, "layers", [])
        if type(layer).__name__ in ("PruneLowMagnitude", "ClusterWeights")
    ]
    if wrapped:
        raise ValueError(
            f"Layers {wrapped} still carry training wrappers; strip them first "
            "(keras_kd.compression.tfmot.strip(model))."
        )


def _check_representative(model, data):
    expected = tuple(_input_spec(model).shape[1:])
    array = np.asarray(data, dtype="float32")
    if array.ndim < 1 or tuple(array.shape[1:]) != expected:
        raise ValueError(f"The representative data has shape {array.shape}; the model takes (batch,) + {expected}.")
    if len(array) == 0:
        raise ValueError("The representative data holds no samples.")
    return array


def export_tflite(model, path, mode="float32", representative_data=None, int8_io=False, num_calibration=200):
    """Convert `model` to a TFLite file at `path` (written atomically) and return its size in bytes.

    Args:
        mode: `"float32"`, `"float16"` (weights in half precision), `"dynamic"` (int8
            weights, float activations) or `"int8"` (full integer, calibrated on
            `representative_data`, e.g. training images).
        representative_data: array of inputs for `"int8"` calibration.
        int8_io: with `"int8"`, make the input and output tensors int8 too (for
            microcontrollers); otherwise they stay float32.

    Raises:
        ValueError: an unknown mode, missing or mis-shaped representative data, a path
            that is a folder.
    """
    import tensorflow as tf

    _check_exportable(model, "TFLite export")
    if mode not in TFLITE_MODES:
        raise ValueError(f"`mode` must be one of {TFLITE_MODES}; received {mode!r}.")
    if os.path.isdir(path):
        raise ValueError(f"TFLite path {path!r} is a folder; give a file name such as student.tflite.")
    calibration = None
    if mode == "int8":
        if representative_data is None:
            raise ValueError("Full-integer (int8) conversion needs `representative_data` to calibrate ranges.")
        calibration = _check_representative(model, representative_data)[:num_calibration]
    with tempfile.TemporaryDirectory() as folder:
        _write_saved_model(model, os.path.join(folder, "saved_model"))
        converter = tf.lite.TFLiteConverter.from_saved_model(os.path.join(folder, "saved_model"))
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            converter.representative_dataset = lambda: ([row[None]] for row in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        flatbuffer = converter.convert()
    atomic.write_bytes(path, flatbuffer)
    return len(flatbuffer)
