"""TopKTeacherCache: the teacher's k most likely tokens per position, the rest of the mass spread evenly.

Checked against NumPy: the rebuilt distribution, the truncation error over real tokens only, the
storage size; and in training: with k = vocabulary - 1 the cache loses nothing, so a student
distilled from it ends where one distilled from the live teacher does.
"""

import numpy as np
import pytest

from keras_kd import Distiller, TeacherCache, TopKTeacherCache
from keras_kd.backend import keras, to_numpy
from keras_kd.teacher.top_k_ops import top_k_logits
from tests import reference

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
    from keras_kd.data.keys import TOP_K_IDS_KEY, TOP_K_PROBABILITIES_KEY

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


# The tail bucket: the teacher's top k and one class for the rest, against the student's same k
# tokens and the sum of its others.


def bucket_reference(top_p, ids, student_logits):
    """float64 log-probabilities over k + 1 classes: `(teacher, student)`."""
    top_p = np.asarray(top_p, "float64")
    teacher = np.concatenate([top_p, np.maximum(1 - top_p.sum(-1, keepdims=True), 0.0)], axis=-1)
    p_s = softmax(student_logits)
    kept = np.take_along_axis(p_s, ids.astype("int64"), axis=-1)
    student = np.concatenate([kept, 1 - kept.sum(-1, keepdims=True)], axis=-1)
    return np.log(np.maximum(teacher, 1e-8)), np.log(student)


DIVERGENCES = {
    "kd": lambda t, s, T: reference.hinton_kd(t, s, T),
    "reverse_kl": reference.reverse_kl,
    "generalized_jsd": lambda t, s, T: reference.generalized_jsd(t, s, 0.5, T),
    "skew_kl": lambda t, s, T: reference.skew_kl(t, s, 0.1, T),
    "skew_reverse_kl": lambda t, s, T: reference.skew_reverse_kl(t, s, 0.1, T),
}


@pytest.mark.parametrize("loss", sorted(DIVERGENCES))
def test_a_tail_bucket_cache_distils_k_plus_one_classes_with_every_divergence(loss):
    """The logged distillation loss of a fit (learning rate 0, one batch, padded sequences, T = 2)
    equals the divergence of the two k + 1 distributions computed in float64, averaged over the
    real tokens; a cache that spreads the rest gives another value."""
    teacher, student = language_model(16, seed=0, sharpness=3.0), language_model(4, seed=7)
    x, y, weight = sequences()
    cache = TopKTeacherCache.build(teacher, x, top_k=3, tail="bucket")
    t, s = bucket_reference(cache.probabilities, cache.targets["teacher_top_k_ids"], to_numpy(student(x)))
    expected = reference.real_token_mean(DIVERGENCES[loss](t, s, 2.0), weight)

    def logged(cache):
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.SGD(0.0), distillation_loss_fn=loss, alpha=0.0, temperature=2.0)
        fit = distiller.fit(x, y, sample_weight=weight, epochs=1, batch_size=48, verbose=0, teacher_cache=cache)
        return fit.history["distillation_loss"][0]

    assert logged(cache) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert logged(TopKTeacherCache.build(teacher, x, top_k=3)) != pytest.approx(expected, rel=1e-2)


def test_the_bucket_sees_only_the_students_mass_outside_the_top_k_where_the_spread_sees_its_shape():
    """Moving the student's logits among the tokens outside the teacher's k, their total kept, leaves
    the bucket's loss as it was (to float32) and changes the spread's."""
    from keras_kd.losses import kd_loss
    from keras_kd.teacher.top_k_ops import tail_bucket_logits

    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(VOCAB) * 0.5, size=(4,))
    ids = np.argsort(-p, axis=-1)[:, :3]
    top = np.take_along_axis(p, ids, axis=-1).astype("float32")
    student = rng.normal(size=(4, VOCAB))
    outside = np.ones((4, VOCAB), bool)
    np.put_along_axis(outside, ids, False, axis=-1)
    # the same total mass outside the top 3, shared out otherwise: log-sum-exp of the outside kept
    moved = student.copy()
    reshaped = rng.normal(size=(4, VOCAB))
    for row in range(4):
        old, new = student[row, outside[row]], reshaped[row, outside[row]]
        shift = np.log(np.exp(old).sum()) - np.log(np.exp(new).sum())
        moved[row, outside[row]] = new + shift

    def bucket(logits):
        return to_numpy(kd_loss(*tail_bucket_logits(top, ids, logits.astype("float32")), temperature=1.0))

    def spread(logits):
        return to_numpy(kd_loss(top_k_logits(top, ids, VOCAB), logits.astype("float32"), temperature=1.0))

    np.testing.assert_allclose(bucket(moved), bucket(student), rtol=1e-5, atol=1e-6)
    assert np.abs(spread(moved) - spread(student)).min() > 1e-3
    t, s = bucket_reference(top, ids, student)
    np.testing.assert_allclose(bucket(student), reference.hinton_kd(t, s, 1.0), rtol=1e-5, atol=1e-6)


def test_a_tail_bucket_cache_is_saved_as_such_and_refused_where_a_loss_needs_the_target_class(tmp_path):
    teacher, student = language_model(16, seed=0), language_model(4, seed=7)
    x, y, weight = sequences()
    cache = TopKTeacherCache.build(teacher, x, top_k=4, tail="bucket")
    spread = TopKTeacherCache.build(teacher, x, top_k=4)
    np.testing.assert_array_equal(cache.probabilities, spread.probabilities)
    assert "teacher_top_k_probabilities" not in cache.targets
    path = str(tmp_path / "bucket.npz")
    cache.save(path)
    loaded = TopKTeacherCache.load(path)
    assert loaded.tail == "bucket" and loaded.top_k == 4
    np.testing.assert_array_equal(loaded.probabilities, cache.probabilities)
    spread.save(str(tmp_path / "spread.npz"))
    assert TopKTeacherCache.load(str(tmp_path / "spread.npz")).tail == "spread"

    before = [to_numpy(w) for w in student.weights]
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", distillation_loss_fn="dkd", alpha=0.5)
    with pytest.raises(ValueError, match="tail='bucket'"):
        distiller.fit(x, y, sample_weight=weight, epochs=1, verbose=0, teacher_cache=loaded)
    with pytest.raises(ValueError, match="tail='bucket'"):  # the cache packed into x by hand
        distiller.evaluate(loaded.attach(x), y, sample_weight=weight, verbose=0)
    assert all(np.array_equal(a, to_numpy(b)) for a, b in zip(before, student.weights))
    distiller.compile(optimizer="sgd", alpha=0.5, metrics=["teacher_agreement"])
    with pytest.raises(ValueError, match="teacher metrics compare token ids"):
        distiller.fit(x, y, sample_weight=weight, epochs=1, verbose=0, teacher_cache=loaded)
    assert all(np.array_equal(a, to_numpy(b)) for a, b in zip(before, student.weights))
    other = language_model(4, seed=7)
    other = keras.Model(other.input, keras.layers.Dense(VOCAB + 2)(other.output))  # 13 classes, not 11
    distiller = Distiller(student=other, teacher=teacher)
    distiller.compile(optimizer="sgd", alpha=0.5, distillation_loss_fn="uld")  # a loss that takes 11 against 13
    with pytest.raises(ValueError, match="built over 11 classes but the student outputs 13"):
        distiller.fit(x, y, sample_weight=weight, epochs=1, verbose=0, teacher_cache=spread)
    with pytest.raises(ValueError, match="`tail` must be one of"):
        TopKTeacherCache.build(teacher, x, top_k=4, tail="other")
