"""Data sets for examples, tests and benchmarks; nothing is downloaded when a local copy exists.

Each loader returns `(x_train, y_train), (x_test, y_test)` as NumPy arrays: images as
float32 in [0, 1] with a channel axis, labels as int64 class indices.
"""

from keras_kd.datasets import digits, fashion_mnist, fsdd, rt_polarity
from keras_kd.registry import Registry

# The data sets the CLI and the model presets know; text has its own example (its teacher reads
# other inputs than its student).
LOADERS = Registry("dataset")
LOADERS.add("digits", digits.load_data)
LOADERS.add("fashion_mnist", fashion_mnist.load_data)
LOADERS.add("fsdd", fsdd.load_standardized)


def load(name, **kwargs):
    """Load the data set called `name` (see `LOADERS`); keyword arguments go to its loader."""
    return LOADERS.lookup(name)(**kwargs)


__all__ = ["LOADERS", "digits", "fashion_mnist", "fsdd", "load", "rt_polarity"]
