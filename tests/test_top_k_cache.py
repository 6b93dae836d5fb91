"""TopKTeacherCache: the teacher's k most likely tokens per position, the rest of the mass spread evenly.

Checked against NumPy: the rebuilt distribution, the truncation error over real tokens only, the
storage size; and in training: with k = vocabulary - 1 the cache loses nothing, so a student
distilled from it ends where one distilled from the live teacher does.
"""

import numpy as np
import pytest

from keras_kd import Distiller, TeacherCache, TopKTeacherCache
from keras_kd.backend import keras, to_numpy
from keras_kd.top_k_cache import top_k_logits

VOCAB, LENGTH = 11, 6


def language_model(width, seed, sharpness=1.0):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    mask = keras.Input((LENGTH,), dtype="int32", name="padding_mask")
    hidden = keras.layers.Embedding(VOCAB, width)(ids)
    hidden = keras.layers.Dense(width, activation="tanh")(hidden)
    logits = keras.layers.Rescaling(sharpness)(
        keras.layers.Dense(VOCAB)(hidden)
    )  # a peaked teacher, as trained ones are
    return keras.Model({"token_ids": ids, "padding_mask": mask}, logits)


def sequences(count=48, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, LENGTH + 1, count)
    padding = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(1, VOCAB, (count, LENGTH)).astype("int32") * padding
    x = {"token_ids": ids, "padding_mask": padding}
    return x, np.roll(ids, -1, axis=1).astype("int64"), padding.astype("float32")


def softmax(logits):
    logits = np.asarray(logits, "float64")
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_the_rebuilt_distribution_keeps_the_top_k_and_spreads_the_rest():
    p = np.random.default_rng(1).dirichlet(np.ones(VOCAB), size=(3, 4)).astype("float32")
    ids = np.argsort(-p, axis=-1)[..., :4]
    top = np.take_along_axis(p, ids, axis=-1)
    expected = np.repeat((1 - top.sum(-1, keepdims=True)) / (VOCAB - 4), VOCAB, axis=-1)
    np.put_along_axis(expected, ids, top, axis=-1)
    rebuilt = np.exp(to_numpy(top_k_logits(top, ids, VOCAB)))
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-5, atol=1e-7)


def test_truncation_error_and_size_are_measured_on_real_tokens():
    teacher = language_model(16, seed=0)
    x, _, padding = sequences()
    cache = TopKTeacherCache.build(teacher, x, top_k=3, batch_size=20)
    p = softmax(to_numpy(teacher(x)))
    order = np.argsort(-p, axis=-1)
    top = np.take_along_axis(p, order[..., :3], axis=-1)
    dropped = 1 - top.sum(-1)
    q = np.repeat(dropped[..., None] / (VOCAB - 3), VOCAB, axis=-1)
    np.put_along_axis(q, order[..., :3], top, axis=-1)
    kl = (p * np.log(p / q)).sum(-1)
    real = padding.astype(bool)
    assert cache.dropped_mass == pytest.approx(dropped[real].mean(), rel=1e-6)
    assert cache.kl_to_full == pytest.approx(kl[real].mean(), rel=1e-5)
    assert cache.kl_to_full != pytest.approx(kl.mean(), rel=1e-3)  # padding would have moved it
    # float16 probabilities and uint16 ids: 4 bytes per kept token, against 4 per vocabulary entry.
    assert cache.nbytes == 48 * LENGTH * 3 * 4
    assert cache.full_logits_nbytes == 48 * LENGTH * VOCAB * 4
    np.testing.assert_array_equal(cache.targets["teacher_top_k_ids"], order[..., :3])


def distilled_student_weights(teacher, x, y, weight, cache):
    student = language_model(4, seed=7)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5), distillation_loss_fn="kd", alpha=0.0, temperature=2.0)
    distiller.fit(x, y, sample_weight=weight, epochs=2, batch_size=16, shuffle=False, verbose=0, teacher_cache=cache)
    return [to_numpy(w) for w in student.weights]


def test_a_cache_that_keeps_all_but_one_token_trains_like_the_live_teacher():
    teacher = language_model(16, seed=0, sharpness=8.0)
    x, y, weight = sequences()
    live = distilled_student_weights(teacher, x, y, weight, cache=None)
    cached = distilled_student_weights(teacher, x, y, weight, TopKTeacherCache.build(teacher, x, top_k=VOCAB - 1))
    initial = [to_numpy(w) for w in language_model(4, seed=7).weights]
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(live, initial))  # training moved the student
    truncated = distilled_student_weights(teacher, x, y, weight, TopKTeacherCache.build(teacher, x, top_k=1))
    gap_cached = max(np.abs(a - b).max() for a, b in zip(live, cached))
    gap_truncated = max(np.abs(a - b).max() for a, b in zip(live, truncated))
    assert gap_cached < 2e-3 and gap_truncated > 10 * gap_cached  # float16 close; k = 1 changes the targets


def test_datasets_save_load_and_refusals(tmp_path):
    tf = pytest.importorskip("tensorflow")
    teacher = language_model(16, seed=0)
    x, y, weight = sequences()
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weight)).batch(16)
    cache = TopKTeacherCache.build(teacher, dataset, top_k=4)
    assert cache.from_dataset and cache.num_examples == 48
    from_arrays = TopKTeacherCache.build(teacher, x, top_k=4)
    np.testing.assert_array_equal(cache.targets["teacher_top_k_ids"], from_arrays.targets["teacher_top_k_ids"])
    assert cache.kl_to_full == pytest.approx(from_arrays.kl_to_full, rel=1e-6)

    path = str(tmp_path / "top_k.npz")
    cache.save(path)
    loaded = TopKTeacherCache.load(path)
    assert (loaded.top_k, loaded.num_classes, loaded.kl_to_full) == (4, VOCAB, cache.kl_to_full)
    assert loaded.dropped_mass == cache.dropped_mass and 0 < loaded.dropped_mass < 1
    arrays_path = str(tmp_path / "top_k_arrays.npz")
    from_arrays.save(arrays_path)
    reloaded = TopKTeacherCache.load(arrays_path)
    assert reloaded.input_fingerprint == from_arrays.input_fingerprint is not None
    assert (reloaded.dropped_mass, reloaded.kl_to_full) == (from_arrays.dropped_mass, from_arrays.kl_to_full)
    with pytest.raises(ValueError, match="TopKTeacherCache.load"):
        TeacherCache.load(path)

    distiller = Distiller(student=language_model(4, seed=7), teacher=teacher)
    distiller.compile(optimizer="sgd", alpha=0.5)
    history = distiller.fit(dataset, epochs=1, verbose=0, teacher_cache=loaded).history
    assert np.isfinite(history["distillation_loss"][0])
    with pytest.raises(ValueError, match="batch 0 differs"):
        distiller.fit(dataset.unbatch().batch(16).skip(1), epochs=1, verbose=0, teacher_cache=loaded)
    with pytest.raises(ValueError, match="top_k=11"):
        TopKTeacherCache.build(teacher, x, top_k=VOCAB)


def test_top_k_of_large_and_unequal_logits_is_exact_and_stored_compactly():
    """Rows of logits near 900 and near 0 in one batch (a sharp teacher): the kept classes are
    exactly the k largest of each row and their probabilities the softmax's, in float16 with uint16
    ids. The default keeps 32 classes."""
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(40, 50)).astype("float32")
    logits[::2] += 900.0
    teacher = keras.Sequential([keras.Input((50,)), keras.layers.Identity()])
    cache = TopKTeacherCache.build(teacher, logits, top_k=5, batch_size=16)
    ids, probabilities = cache.targets["teacher_top_k_ids"], cache.targets["teacher_top_k_probabilities"]
    assert ids.dtype == np.uint16 and probabilities.dtype == np.float16
    want_ids = np.argsort(-logits, axis=-1)[:, :5]
    np.testing.assert_array_equal(ids, want_ids)
    want_p = np.take_along_axis(softmax(logits), want_ids, axis=-1)
    np.testing.assert_allclose(probabilities.astype("float64"), want_p, rtol=2e-3, atol=1e-4)
    assert np.isfinite(cache.dropped_mass) and np.isfinite(cache.kl_to_full)
    assert TopKTeacherCache.build(teacher, logits).top_k == 32


def test_sequences_without_a_padding_mask_count_every_token_and_all_but_one_class_loses_nothing():
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=2.0, size=(6, 4, VOCAB)).astype("float32")
    teacher = keras.Sequential([keras.Input((4, VOCAB)), keras.layers.Identity()])
    cache = TopKTeacherCache.build(teacher, logits, top_k=3)
    top = np.sort(softmax(logits), axis=-1)[..., ::-1][..., :3]
    assert cache.dropped_mass == pytest.approx((1 - top.sum(-1)).mean(), rel=1e-5)
    # k = vocabulary - 1: the one class left out gets exactly the mass left, so nothing is lost.
    assert TopKTeacherCache.build(teacher, logits, top_k=VOCAB - 1).kl_to_full == pytest.approx(0.0, abs=1e-6)


def test_top_k_targets_are_stored_small_and_unmeasured_settings_stay_unset(tmp_path):
    from keras_kd.inputs import TOP_K_IDS_KEY, TOP_K_PROBABILITIES_KEY

    probabilities, ids = np.full((2, 3), 0.25), np.array([[0, 1, 2], [3, 4, 65535]])
    for classes, dtype in ((2**16, np.uint16), (2**16 + 1, np.int32)):  # uint16 holds ids up to 65535
        cache = TopKTeacherCache(probabilities, ids, classes, "a fingerprint", 2)
        assert cache.targets[TOP_K_PROBABILITIES_KEY].dtype == np.float16
        assert cache.targets[TOP_K_IDS_KEY].dtype == dtype
        np.testing.assert_array_equal(cache.targets[TOP_K_IDS_KEY], ids)
        assert cache.dropped_mass is None and cache.kl_to_full is None  # not measured: not made up
        path = str(tmp_path / f"cache_{classes}.npz")
        cache.save(path)
        loaded = TopKTeacherCache.load(path)
        assert loaded.dropped_mass is None and loaded.kl_to_full is None and loaded.num_classes == classes
