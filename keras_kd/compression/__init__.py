"""Making the distilled student smaller still: pruning, quantization, clustering, and export.

On tf_keras (TF_USE_LEGACY_KERAS=1) these wrap TensorFlow Model Optimization; on Keras 3,
which TF-MOT refuses, pruning is `MagnitudePruning` (same schedule semantics, any backend)
and quantization is Keras's own `model.quantize`. Export writes TF Serving SavedModels and
TFLite files of the student only.
"""

from keras_kd.compression.export import export_saved_model, export_tflite, next_version
from keras_kd.compression.magnitude_pruning import MagnitudePruning, prunable_kernels, sparsity_of
from keras_kd.compression.pruning_schedules import ConstantSparsity, PolynomialDecay

__all__ = [
    "ConstantSparsity",
    "MagnitudePruning",
    "PolynomialDecay",
    "export_saved_model",
    "export_tflite",
    "next_version",
    "prunable_kernels",
    "sparsity_of",
]
