"""The subset of `keras.ops` that keras-kd uses, written with TensorFlow for tf_keras.

tf_keras has no `keras.ops`; these functions keep the signatures of their Keras 3
namesakes so that the loss code is written once and runs on both engines.
"""

import builtins

import tensorflow as tf


def convert_to_tensor(x, dtype=None):
    return tf.convert_to_tensor(x, dtype=dtype)


def cast(x, dtype):
    return tf.cast(x, dtype)


def shape(x):
    static = x.shape
    if static.rank is not None and builtins.all(d is not None for d in static):
        return tuple(static)
    dynamic = tf.shape(x)
    return tuple(d if d is not None else dynamic[i] for i, d in enumerate(static))


def reshape(x, newshape):
    return tf.reshape(x, newshape)


def softmax(x, axis=-1):
    return tf.nn.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return tf.nn.log_softmax(x, axis=axis)


def logsumexp(x, axis=None, keepdims=False):
    return tf.reduce_logsumexp(x, axis=axis, keepdims=keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001 (mirrors keras.ops.sum)
    return tf.reduce_sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return tf.reduce_mean(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_max(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_min(x, axis=axis, keepdims=keepdims)


def exp(x):
    return tf.exp(x)


def sigmoid(x):
    return tf.sigmoid(x)


def log(x):
    return tf.math.log(x)


def square(x):
    return tf.square(x)


def sqrt(x):
    return tf.sqrt(x)


def abs(x):  # noqa: A001
    return tf.abs(x)


def maximum(x1, x2):
    return tf.maximum(x1, x2)


def minimum(x1, x2):
    return tf.minimum(x1, x2)


def clip(x, x_min, x_max):
    return tf.clip_by_value(x, x_min, x_max)


def where(condition, x1, x2):
    return tf.where(condition, x1, x2)


def equal(x1, x2):
    return tf.equal(x1, x2)


def argmax(x, axis=None, keepdims=False):
    out = tf.argmax(x, axis=-1 if axis is None else axis)
    return tf.expand_dims(out, axis) if keepdims else out


def one_hot(x, num_classes, axis=-1, dtype=None):
    return tf.one_hot(tf.cast(x, "int32"), num_classes, axis=axis, dtype=dtype or "float32")


def expand_dims(x, axis):
    return tf.expand_dims(x, axis)


def squeeze(x, axis=None):
    return tf.squeeze(x, axis=axis)


def matmul(x1, x2):
    return tf.linalg.matmul(x1, x2)


def transpose(x, axes=None):
    return tf.transpose(x, perm=axes)


def stop_gradient(x):
    return tf.stop_gradient(x)


def stack(x, axis=0):
    return tf.stack(x, axis=axis)


def concatenate(xs, axis=0):
    return tf.concat(xs, axis=axis)


def ones_like(x, dtype=None):
    return tf.ones_like(x, dtype=dtype)


def zeros_like(x, dtype=None):
    return tf.zeros_like(x, dtype=dtype)


def eye(n, dtype=None):
    return tf.eye(n, dtype=dtype or "float32")


def all(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_all(tf.cast(x, "bool"), axis=axis, keepdims=keepdims)


def any(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_any(tf.cast(x, "bool"), axis=axis, keepdims=keepdims)


def isfinite(x):
    return tf.math.is_finite(x)


def size(x):
    return tf.size(x)


def take(x, indices, axis=None):
    if axis is None:
        return tf.gather(tf.reshape(x, (-1,)), indices)
    return tf.gather(x, indices, axis=axis)


def scatter_update(inputs, indices, updates):
    return tf.tensor_scatter_nd_update(inputs, indices, updates)


def zeros(shape, dtype=None):
    return tf.zeros(shape, dtype=dtype or "float32")


def arange(stop, dtype="int32"):
    return tf.range(stop, dtype=dtype)


def scatter(indices, values, shape):
    return tf.scatter_nd(indices, values, tf.stack(shape) if isinstance(shape, (list, tuple)) else shape)


def take_along_axis(x, indices, axis=-1):
    return tf.experimental.numpy.take_along_axis(x, indices, axis=axis)


def sort(x, axis=-1):
    return tf.sort(x, axis=axis)


def pad(x, pad_width):
    return tf.pad(x, pad_width)
