"""Small reference architectures for teachers and students, all ending in logits."""

from keras_kd.models.cnn import build_cnn
from keras_kd.models.mlp import build_mlp
from keras_kd.models.presets import PRESETS, build_model, build_pair

__all__ = ["PRESETS", "build_cnn", "build_mlp", "build_model", "build_pair"]
