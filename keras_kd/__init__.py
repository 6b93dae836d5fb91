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
    "AugmentedTeacherCache": "keras_kd.teacher.augmented",
    "CropFlipViews": "keras_kd.teacher.views",
    "Distiller": "keras_kd.distiller",
    "ENGINE": "keras_kd.backend",
    "ENGINE_DESCRIPTION": "keras_kd.backend",
    "FeatureDistillation": "keras_kd.features",
    "MISSING_LABEL": "keras_kd.data.transfer",
    "MixUpViews": "keras_kd.teacher.views",
    "OnPolicy": "keras_kd.training.on_policy",
    "TeacherCache": "keras_kd.teacher.cache",
    "TopKTeacherCache": "keras_kd.teacher.top_k",
    "load_distiller": "keras_kd.distiller",
    "transfer_set": "keras_kd.data.transfer",
    "tune": "keras_kd.jobs.tune",  # imports KerasTuner only when called
    "with_indices": "keras_kd.data.keys",
}
# Public module -> where it lives (`keras_kd.recipes` is `keras_kd.training.recipes`).
_SUBMODULES = {
    "callbacks": "keras_kd.training.callbacks",
    "compression": "keras_kd.compression",
    "datasets": "keras_kd.datasets",
    "jobs": "keras_kd.jobs",
    "losses": "keras_kd.losses",
    "metrics": "keras_kd.metrics",
    "models": "keras_kd.models",
    "recipes": "keras_kd.training.recipes",
    "schedules": "keras_kd.training.schedules",
    "utils": "keras_kd.utils",
}

__all__ = sorted([*_ATTRIBUTES, *_SUBMODULES, "__version__"])


def __getattr__(name):
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'keras_kd' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return __all__
