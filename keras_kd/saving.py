"""Loading a saved Distiller, optimizer state included, on either engine.

Keras 3 and tf_keras `.keras` files restore everything through `keras.models.load_model`.
A tf_keras SavedModel folder keeps the optimizer's slots in its checkpoint, but tf_keras
recompiles with a fresh optimizer; `load_distiller` reads the slots back so that training
resumes exactly where it stopped.
"""

import os

from keras_kd.backend import IS_TF_KERAS, keras


def load_distiller(path, custom_objects=None):
    """Load a `Distiller` (or any model) saved with `.save(path)`, ready to resume training.

    Args:
        path: a `.keras` file, or (tf_keras) a SavedModel folder.
        custom_objects: classes the teacher or student need, as for `load_model`.

    Returns:
        The loaded model, compiled as it was saved.
    """
    model = keras.models.load_model(path, custom_objects=custom_objects)
    checkpoint_prefix = os.path.join(path, "variables", "variables")
    if IS_TF_KERAS and os.path.isdir(path) and getattr(model, "optimizer", None) is not None:
        import tensorflow as tf

        model.optimizer.build(model.trainable_variables)
        tf.train.Checkpoint(root=model).read(checkpoint_prefix).expect_partial()
    return model
