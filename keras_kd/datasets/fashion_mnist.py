"""Fashion-MNIST read from a local copy of its four IDX files, downloaded only as a last resort."""

import gzip
import os

import numpy as np

NUM_CLASSES = 10
DATA_DIR_ENV = "KERAS_KD_DATA_DIR"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's `dataset-fashion-mnist`
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def candidate_dirs(data_dir=None):
    """Folders searched in order: the argument, $KERAS_KD_DATA_DIR, Debian's, the Keras cache."""
    dirs = []
    for root in (data_dir, os.environ.get(DATA_DIR_ENV)):
        if root:
            dirs += [root, os.path.join(root, "fashion-mnist"), os.path.join(root, "fashion_mnist")]
    dirs.append(DEBIAN_DIR)
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    dirs.append(os.path.join(keras_home, "datasets", "fashion-mnist"))
    return dirs


def find_local_dir(data_dir=None):
    """The first candidate folder holding all four files, or None."""
    for folder in candidate_dirs(data_dir):
        if all(os.path.isfile(os.path.join(folder, name)) for name in FILES.values()):
            return folder
    return None


def read_idx(path):
    """Read one gzip'd IDX file (the MNIST format) into a uint8 array."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x}).")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {np.prod(shape)} values, got {array.size}.")
    return array.reshape(shape)


def load_data(data_dir=None, download=True):
    """Fashion-MNIST's official split: 60,000 training and 10,000 test images.

    Args:
        data_dir: a folder with the four `*-ubyte.gz` files (or its parent).
        download: when no local copy exists, fall back to `keras.datasets` (needs a network).

    Returns:
        `(x_train, y_train), (x_test, y_test)`; images `(n, 28, 28, 1)` float32 in [0, 1].

    Raises:
        FileNotFoundError: no local copy and `download=False`; says where it looked.
    """
    folder = find_local_dir(data_dir)
    if folder is not None:
        arrays = {key: read_idx(os.path.join(folder, name)) for key, name in FILES.items()}
        x_train, y_train, x_test, y_test = (
            arrays["x_train"],
            arrays["y_train"],
            arrays["x_test"],
            arrays["y_test"],
        )
    elif download:
        from keras_kd.backend import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    else:
        raise FileNotFoundError(
            "Fashion-MNIST not found in "
            + ", ".join(candidate_dirs(data_dir))
            + ". Install Debian's `dataset-fashion-mnist`, set "
            f"{DATA_DIR_ENV}, or pass download=True."
        )

    def images(x):
        return (x.astype("float32") / 255.0)[..., np.newaxis]

    return (images(x_train), y_train.astype("int64")), (images(x_test), y_test.astype("int64"))
