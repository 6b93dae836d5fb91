"""TF-MOT, imported only under tf_keras: its import switches the process to tf_keras as a side effect."""

from keras_kd.backend import assert_tf_keras


def load_tfmot(feature):
    """`tensorflow_model_optimization`, or a RuntimeError naming `feature` and the switch to tf_keras."""
    assert_tf_keras(feature)
    import tensorflow_model_optimization as tfmot

    return tfmot
