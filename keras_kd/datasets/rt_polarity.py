"""Movie-review sentence polarity (Pang and Lee 2005): 5,331 positive and 5,331 negative sentences.

There is no official split (papers use 10-fold cross-validation); `load_data` makes a
fixed, documented one: the sentences shuffled with `seed`, the last `test_fraction` held out.
"""

import os
import tarfile
import tempfile
import urllib.request

import numpy as np

from keras_kd.datasets.local_data import candidate_dirs, find_dir

FILES = ("rt-polarity.pos", "rt-polarity.neg")
URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
CLASS_NAMES = ("negative", "positive")


def _complete(folder):
    return all(os.path.isfile(os.path.join(folder, name)) for name in FILES)


def _read_lines(path):
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # the original archive is Latin-1
        text = raw.decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _download():
    folder = tempfile.mkdtemp(prefix="rt-polarity-")
    archive = os.path.join(folder, "rt-polaritydata.tar.gz")
    urllib.request.urlretrieve(URL, archive)  # noqa: S310 (a fixed https address)
    with tarfile.open(archive) as handle:
        handle.extractall(folder, filter="data")
    return os.path.join(folder, "rt-polaritydata")


def load_data(data_dir=None, test_fraction=0.1, seed=0, download=True):
    """`(x_train, y_train), (x_test, y_test)`: sentences as str arrays, labels 1 = positive.

    Raises:
        FileNotFoundError: no local copy and `download=False`; says where it looked.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must lie in (0, 1); received {test_fraction!r}.")
    folder = find_dir("rt-polarity", _complete, data_dir)
    if folder is None:
        if not download:
            raise FileNotFoundError("rt-polarity not found in " + ", ".join(candidate_dirs("rt-polarity", data_dir)))
        folder = _download()
    positive = _read_lines(os.path.join(folder, FILES[0]))
    negative = _read_lines(os.path.join(folder, FILES[1]))
    sentences = np.array(positive + negative, dtype=object)
    labels = np.array([1] * len(positive) + [0] * len(negative), dtype="int64")
    order = np.random.default_rng(seed).permutation(len(sentences))
    sentences, labels = sentences[order], labels[order]
    split = len(sentences) - int(round(test_fraction * len(sentences)))
    return (sentences[:split], labels[:split]), (sentences[split:], labels[split:])
