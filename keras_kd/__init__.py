"""keras-kd: knowledge distillation for Keras 3 and tf_keras.

The engine follows TensorFlow's convention: `TF_USE_LEGACY_KERAS=1` selects tf_keras
(Keras 2, needed by TensorFlow Model Optimization); otherwise Keras 3 is used.

The public names below load on first use (PEP 562), so that `import keras_kd` and the
command line's `--help` answer without importing TensorFlow.
"""

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_ATTRIBUTES = {
    "AugmentedTeacherCache": "keras_kd.augmented_cache",
    "CropFlipViews": "keras_kd.augmented_cache",
    "Distiller": "keras_kd.distiller",
    "ENGINE": "keras_kd.backend",
    "ENGINE_DESCRIPTION": "keras_kd.backend",
    "FeatureDistillation": "keras_kd.feature_distillation",
    "MISSING_LABEL": "keras_kd.transfer_data",
    "MixUpViews": "keras_kd.augmented_cache",
    "OnPolicy": "keras_kd.on_policy",
    "TeacherCache": "keras_kd.teacher_cache",
    "TopKTeacherCache": "keras_kd.top_k_cache",
    "load_distiller": "keras_kd.saving",
    "transfer_set": "keras_kd.transfer_data",
    "tune": "keras_kd.jobs.tune",  # imports KerasTuner only when called
    "with_indices": "keras_kd.inputs",
}
_SUBMODULES = ("callbacks", "datasets", "losses", "metrics", "models", "recipes", "schedules", "utils")

__all__ = sorted([*_ATTRIBUTES, *_SUBMODULES, "__version__"])


def __getattr__(name):
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_kd.{name}")
    else:
        raise AttributeError(f"module 'keras_kd' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return __all__
