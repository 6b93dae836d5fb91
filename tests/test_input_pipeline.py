"""`make_dataset`: arrays become shuffled, batched, prefetched `tf.data` batches, augmented in the pipeline; the
Distiller trains from it on every backend."""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras
from keras_kd.data.keys import with_indices
from keras_kd.data.pipeline import make_dataset

tf = pytest.importorskip("tensorflow")


def test_every_example_once_per_epoch_reshuffled_and_prefetched(data):
    x, y = data
    dataset = make_dataset(x, y, batch_size=20, seed=3)
    first = np.concatenate([np.asarray(b[1]) for b in dataset])
    rows = np.concatenate([np.asarray(b[0]) for b in dataset])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, x.tolist()))  # each example once
    second = np.concatenate([np.asarray(b[1]) for b in dataset])
    assert sorted(first.tolist()) == sorted(y.tolist())
    plain = np.concatenate([np.asarray(b[0]) for b in make_dataset(x, y, batch_size=20, shuffle=False)])
    np.testing.assert_array_equal(plain, x)
    assert not np.array_equal(first, second) or not np.array_equal(rows, x)  # reshuffled
    assert "Prefetch" in type(dataset).__name__
    assert [len(b[0]) for b in make_dataset(x, y, batch_size=20, shuffle=False)] == [20, 20, 20, 20, 16]


def test_augmentation_runs_in_the_pipeline_with_labels_and_dicts_kept(data):
    x, y = data
    calls = []

    def double(batch):
        calls.append(1)  # traced once by tf.data, not once per batch in Python
        return batch * 2.0

    doubled = make_dataset(x, y, batch_size=32, shuffle=False, augmentation=double)
    batches = list(doubled)
    np.testing.assert_allclose(np.concatenate([np.asarray(b[0]) for b in batches]), x * 2.0)
    np.testing.assert_array_equal(np.concatenate([np.asarray(b[1]) for b in batches]), y)
    assert len(calls) == 1
    indexed = next(iter(make_dataset(with_indices(x), y, batch_size=8, shuffle=False, augmentation=double)))
    np.testing.assert_allclose(np.asarray(indexed[0]["inputs"]), x[:8] * 2.0)
    np.testing.assert_array_equal(np.asarray(indexed[0]["index"]), np.arange(8))
    images = x.reshape(-1, 2, 4, 1)
    flip = keras.layers.RandomFlip("horizontal", seed=1)
    flipped = np.concatenate([np.asarray(b) for b in make_dataset(images, shuffle=False, augmentation=flip)])
    assert not np.allclose(flipped, images)  # a Keras layer runs with training=True, on every backend
    np.testing.assert_allclose(np.sort(flipped, axis=2), np.sort(images, axis=2))  # rows flipped, nothing else
    with pytest.raises(ValueError, match="same, nonzero number"):
        make_dataset(x, y[:10])
    if keras_kd.backend.BACKEND in ("jax", "torch"):
        with pytest.raises(TypeError, match="cannot run inside tf.data"):
            make_dataset(x, augmentation=keras.layers.GaussianNoise(1.0))


def test_the_distiller_trains_from_the_pipeline(data, teacher, student):
    x, y = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.5)
    history = distiller.fit(
        make_dataset(x, y, batch_size=16, augmentation=lambda batch: batch + 0.01), epochs=2, verbose=0, shuffle=False
    )
    assert np.all(np.isfinite(history.history["loss"])) and len(history.history["loss"]) == 2
