"""Loaders: fixed splits, IDX parsing, and the local folders searched before any download."""

import gzip
import os

import numpy as np
import pytest

from keras_kd import datasets
from keras_kd.datasets import fashion_mnist


def test_digits_split_is_stratified_and_fixed_by_seed():
    (x_train, y_train), (x_test, y_test) = datasets.load("digits", seed=3)
    assert x_train.shape[1:] == (8, 8, 1) and x_train.dtype == np.float32
    assert len(x_train) + len(x_test) == 1797
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert set(np.unique(y_test)) == set(range(10))
    (again, _), _ = datasets.load("digits", seed=3)
    (other, _), _ = datasets.load("digits", seed=4)
    np.testing.assert_array_equal(x_train, again)
    assert not np.array_equal(x_train, other)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="known datasets: digits, fashion_mnist"):
        datasets.load("cifar1000")


def _write_idx(path, array):
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion_dir(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 28, 28)),
        "y_train": np.arange(6) % 10,
        "x_test": rng.integers(0, 256, (4, 28, 28)),
        "y_test": np.arange(4),
    }
    for key, name in fashion_mnist.FILES.items():
        _write_idx(tmp_path / name, arrays[key])
    return tmp_path, arrays


def test_fashion_mnist_reads_idx_files_from_a_folder(tiny_fashion_dir):
    folder, arrays = tiny_fashion_dir
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(str(folder), download=False)
    assert x_train.shape == (6, 28, 28, 1) and x_test.shape == (4, 28, 28, 1)
    np.testing.assert_allclose(x_train[..., 0], arrays["x_train"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_train, arrays["y_train"])


def test_fashion_mnist_environment_variable(tiny_fashion_dir, monkeypatch):
    folder, _ = tiny_fashion_dir
    monkeypatch.setenv(fashion_mnist.DATA_DIR_ENV, str(folder))
    assert fashion_mnist.find_local_dir() == str(folder)


def test_fashion_mnist_truncated_file_is_refused(tiny_fashion_dir):
    folder, _ = tiny_fashion_dir
    path = folder / fashion_mnist.FILES["y_test"]
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(data[:-1])
    with pytest.raises(ValueError, match="truncated"):
        fashion_mnist.load_data(str(folder), download=False)


def test_fashion_mnist_missing_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(fashion_mnist.DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        fashion_mnist.load_data(str(tmp_path / "empty"), download=False)


@pytest.mark.skipif(not os.path.isdir(fashion_mnist.DEBIAN_DIR), reason="dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_is_the_official_split():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(download=False)
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_rt_polarity_reads_a_folder_and_splits_reproducibly(tmp_path):
    from keras_kd.datasets import rt_polarity

    (tmp_path / "rt-polarity.pos").write_bytes("a fine film\nsuperb\ncaf\xe9 charm\n".encode("latin-1"))
    (tmp_path / "rt-polarity.neg").write_text("dull\nboring plot\n")
    (x_train, y_train), (x_test, y_test) = rt_polarity.load_data(str(tmp_path), test_fraction=0.4, download=False)
    assert len(x_train) == 3 and len(x_test) == 2
    assert sorted(np.concatenate([x_train, x_test]).tolist()) == sorted(
        ["a fine film", "superb", "caf\xe9 charm", "dull", "boring plot"]
    )
    labels = dict(zip(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])))
    assert labels["superb"] == 1 and labels["dull"] == 0
    (again, _), _ = rt_polarity.load_data(str(tmp_path), test_fraction=0.4, download=False)
    np.testing.assert_array_equal(x_train, again)


def test_fsdd_reads_wavs_and_splits_by_recording_index(tmp_path):
    from scipy.io import wavfile

    from keras_kd.datasets import fsdd

    rng = np.random.default_rng(0)
    for digit in (3, 7):
        for index in (0, 4, 5, 9):
            samples = (rng.normal(size=6000) * 3000).astype(np.int16)
            wavfile.write(tmp_path / f"{digit}_alice_{index}.wav", fsdd.SAMPLE_RATE, samples)
    (tmp_path / "notes.txt").write_text("not a recording")
    (x_train, y_train), (x_test, y_test) = fsdd.load_data(str(tmp_path), download=False)
    assert len(x_test) == 4 and len(x_train) == 4  # indices 0-4 test, 5-9 train
    assert x_train.shape[1:] == (61, 40, 1) and np.all(np.isfinite(x_train))
    assert sorted(y_test.tolist()) == [3, 3, 7, 7]


@pytest.mark.skipif(not os.path.isdir(os.path.join(os.pardir, "shared", "data", "fsdd")), reason="no shared data")
def test_shared_fsdd_and_rt_polarity_have_the_documented_sizes():
    from keras_kd.datasets import fsdd, rt_polarity

    (x_train, _), (x_test, _) = rt_polarity.load_data(download=False)
    assert len(x_train) + len(x_test) == 10662
    folder = os.path.join(os.pardir, "shared", "data", "fsdd", "recordings")
    waves, digits, speakers, indices = fsdd.read_recordings(folder)
    assert len(waves) == 3000 and np.sum(indices <= 4) == 300
