"""Post-training quantization of a distilled Keras 3 student with Keras's own `model.quantize`."""

from keras_kd.backend import IS_TF_KERAS
from keras_kd.utils import copy_model

KERAS_QUANTIZE_MODES = ("int8", "int4", "float8")


def quantize_post_training(model, mode="int8"):
    """A copy of `model` quantized with `model.quantize(mode)` (Keras 3 only); the original is kept.

    Raises:
        RuntimeError: on tf_keras, which has no `quantize` (use TF-MOT's QAT or TFLite).
        ValueError: an unknown mode.
    """
    if IS_TF_KERAS:
        raise RuntimeError(
            "Keras's model.quantize exists on Keras 3 only; on tf_keras use keras_kd.compression.tfmot.quantize "
            "(QAT) or export_tflite(mode='int8')."
        )
    if mode not in KERAS_QUANTIZE_MODES:
        raise ValueError(f"`mode` must be one of {KERAS_QUANTIZE_MODES}; received {mode!r}.")
    copy = copy_model(model)
    copy.quantize(mode)
    return copy
