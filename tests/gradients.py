"""`gradient(fn, x)`: d fn(x) / d x as a NumPy array, with the active backend's own autodiff.

Tests of backend-agnostic code use this instead of `tf.GradientTape`, so they run on
TensorFlow (either engine), JAX and PyTorch alike.
"""

import numpy as np

from keras_kd.backend import BACKEND


def gradient(fn, x):
    x = np.asarray(x, dtype="float32")
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(lambda value: fn(value))(x))
    if BACKEND == "torch":
        import torch

        variable = torch.tensor(x, requires_grad=True)
        fn(variable).backward()
        return variable.grad.numpy()
    import tensorflow as tf

    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = fn(variable)
    return tape.gradient(value, variable).numpy()
