"""The augmentations an `AugmentedTeacherCache` stores: each draws its parameters once (a mix-up
partner and weight, a crop offset and a flip) with NumPy, and rebuilds the view from them with
TensorFlow ops in the `tf.data` pipeline, bit for bit the input the teacher saw."""

import numpy as np


def _tf():
    import tensorflow as tf

    return tf


class MixUpViews:
    """Mix-up views: `lam * x + (1 - lam) * x[partner]`, `lam ~ Beta(alpha, alpha)` (the function-matching view).

    For arrays the partner is any example; for a dataset, an example of the same batch. Labels
    are left as the first example's (function matching trains on the teacher alone, alpha=0).
    """

    needs_partner = True

    def __init__(self, alpha=1.0):
        if alpha <= 0:
            raise ValueError(f"MixUpViews needs alpha > 0; received {alpha}.")
        self.alpha = float(alpha)

    def get_config(self):
        return {"alpha": self.alpha}

    def sample(self, rng, shape, partners):
        return {
            "partner": rng.integers(0, partners, size=shape).astype("int64"),
            "lam": rng.beta(self.alpha, self.alpha, size=shape).astype("float32"),
        }

    def apply(self, x, params, partner_x):
        tf = _tf()
        lam = tf.reshape(params["lam"], [-1] + [1] * (len(x.shape) - 1))
        return lam * x + (1.0 - lam) * partner_x


class CropFlipViews:
    """Random-crop views of images `(H, W, C)`: zero-pad by `padding`, crop back at a stored offset, maybe flip."""

    needs_partner = False

    def __init__(self, padding=4, flip=True):
        self.padding, self.flip = int(padding), bool(flip)

    def get_config(self):
        return {"padding": self.padding, "flip": self.flip}

    def sample(self, rng, shape, partners):
        flips = rng.integers(0, 2, size=shape) if self.flip else np.zeros(shape)
        return {
            "dy": rng.integers(0, 2 * self.padding + 1, size=shape).astype("int64"),
            "dx": rng.integers(0, 2 * self.padding + 1, size=shape).astype("int64"),
            "flip": flips.astype("bool"),
        }

    def apply(self, x, params, partner_x=None):
        tf = _tf()
        if len(x.shape) != 4:
            raise ValueError(f"CropFlipViews takes image batches (N, H, W, C); received shape {x.shape}.")
        height, width, p = x.shape[1], x.shape[2], self.padding
        padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        rows = params["dy"][:, None] + tf.range(height, dtype="int64")[None]
        cols = params["dx"][:, None] + tf.range(width, dtype="int64")[None]
        view = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        return tf.where(params["flip"][:, None, None, None], tf.reverse(view, [2]), view)


VIEWS = {"MixUpViews": MixUpViews, "CropFlipViews": CropFlipViews}
