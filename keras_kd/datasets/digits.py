"""scikit-learn's bundled 8x8 handwritten digits: the embedded default that needs no download."""

import numpy as np

NUM_CLASSES = 10


def load_data(test_fraction=0.25, seed=0):
    """Digits split into stratified train and test sets with a fixed seed.

    Args:
        test_fraction: share of the 1,797 images held out for testing, in (0, 1).
        seed: seed of the split; the same seed gives the same split on every machine.

    Returns:
        `(x_train, y_train), (x_test, y_test)`; images `(n, 8, 8, 1)` float32 in [0, 1].
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must lie in (0, 1); received {test_fraction!r}.")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images / 16.0).astype("float32")[..., np.newaxis]
    labels = bunch.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return (x_train, y_train), (x_test, y_test)
