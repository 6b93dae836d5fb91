"""TensorFlow Model Optimization on the tf_keras engine, split as TF-MOT is: prune, cluster, quantize.

TF-MOT only accepts tf_keras (Keras 2) models, and importing it sets TF_USE_LEGACY_KERAS=1
in the process as a side effect; so it is imported lazily (`load_tfmot`), and only once the
tf_keras engine is known to be active. On Keras 3 each function raises a RuntimeError that says
how to switch (or use `MagnitudePruning` and `quantize_post_training`, which need no TF-MOT).
"""

from keras_kd.compression.tfmot.cluster import cluster, strip
from keras_kd.compression.tfmot.prune import prune, pruning_callbacks, unsupported_layers
from keras_kd.compression.tfmot.quantize import quantize

__all__ = ["cluster", "prune", "pruning_callbacks", "quantize", "strip", "unsupported_layers"]
