"""keras-kd: knowledge distillation for Keras 3 and tf_keras.

The engine follows TensorFlow's convention: `TF_USE_LEGACY_KERAS=1` selects tf_keras
(Keras 2, needed by TensorFlow Model Optimization); otherwise Keras 3 is used.
"""

from keras_kd import callbacks, datasets, losses, models, recipes, schedules, utils
from keras_kd.backend import ENGINE, ENGINE_DESCRIPTION
from keras_kd.distiller import Distiller
from keras_kd.feature_distillation import FeatureDistillation
from keras_kd.inputs import with_indices
from keras_kd.saving import load_distiller
from keras_kd.teacher_cache import TeacherCache
from keras_kd.transfer_set import MISSING_LABEL, transfer_set

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "MISSING_LABEL",
    "ENGINE",
    "ENGINE_DESCRIPTION",
    "FeatureDistillation",
    "TeacherCache",
    "__version__",
    "callbacks",
    "recipes",
    "schedules",
    "datasets",
    "load_distiller",
    "losses",
    "models",
    "utils",
    "transfer_set",
    "with_indices",
]
