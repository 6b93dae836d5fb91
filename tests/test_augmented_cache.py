"""`AugmentedTeacherCache`: the replayed views are the cached ones bit for bit, the top-k soft labels keep the
loss within a measured tolerance of the full teacher's, training runs from the cache, and the file round-trips."""

import os

import numpy as np
import pytest

import keras_kd
from keras_kd import losses as kd_losses
from keras_kd.backend import keras, to_numpy
from keras_kd.data.keys import INPUTS_KEY, TEACHER_LOGITS_KEY
from keras_kd.teacher.augmented import AugmentedTeacherCache, CropFlipViews, MixUpViews
from tests.conftest import NUM_FEATURES, make_mlp

tf = pytest.importorskip("tensorflow")
TEMPERATURE = 2.0
TOP_K_LOSS_FACTOR = 0.5  # relative loss change / mass left out; measured 0.25-0.4 on these models


def _teacher(classes=10, scale=3.0):
    model = make_mlp(32, classes=classes, name="teacher10")
    model.set_weights([w * scale for w in model.get_weights()])  # peaked, teacher-like soft labels
    return model


def _softmax_top_k(logits, k, temperature):
    p = np.exp((logits - logits.max(-1, keepdims=True)) / temperature)
    p /= p.sum(-1, keepdims=True)
    return -np.sort(-p, axis=-1)[:, :k]


def test_replayed_views_are_the_cached_views(data):
    x, y = data
    teacher = _teacher()
    cache = AugmentedTeacherCache.build(
        teacher, x, MixUpViews(0.5), views=3, top_k=10, temperature=TEMPERATURE, batch_size=40
    )
    for view in range(3):
        seen = 0
        for packed, labels in cache.dataset(x, y, batch_size=32, shuffle=False, view=view):
            rows = np.arange(seen, seen + len(labels))
            lam, partner = cache.params["lam"][rows, view], cache.params["partner"][rows, view]
            built = lam[:, None] * x[rows] + (1.0 - lam[:, None]) * x[partner]  # the view from its parameters
            np.testing.assert_array_equal(np.asarray(packed[INPUTS_KEY]), built.astype("float32"))
            np.testing.assert_array_equal(np.asarray(labels), y[rows])
            # The teacher on the replayed input gives the probabilities stored when the cache was built.
            expected = _softmax_top_k(
                to_numpy(teacher(np.asarray(packed[INPUTS_KEY]), training=False)), 10, TEMPERATURE
            )
            np.testing.assert_allclose(cache.probabilities[rows, view], expected, atol=2e-3)
            replayed = np.asarray(tf.nn.softmax(packed[TEACHER_LOGITS_KEY] / TEMPERATURE))
            np.testing.assert_allclose(-np.sort(-replayed, -1), expected, atol=2e-3)
            seen += len(labels)
        assert seen == len(x)


def test_crop_flip_views_replay_on_a_dataset_and_reshuffles_are_refused():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(40, 6, 6, 1)).astype("float32")
    labels = rng.integers(0, 10, size=40)
    teacher = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    views = CropFlipViews(padding=2)
    cache = AugmentedTeacherCache.build(teacher, dataset, views, views=2, top_k=3, temperature=1.0)
    assert cache.from_dataset and cache.batch_sizes.tolist() == [16, 16, 8]
    for view in range(2):
        offset = 0
        for packed, _ in cache.dataset(dataset, view=view):
            size = len(packed[INPUTS_KEY])
            rows = np.arange(offset, offset + size)
            for row in rows:  # crop and flip rebuilt by hand from the stored parameters
                dy, dx, flip = (cache.params[k][row, view] for k in ("dy", "dx", "flip"))
                crop = np.pad(images[row], ((2, 2), (2, 2), (0, 0)))[dy : dy + 6, dx : dx + 6]
                np.testing.assert_array_equal(
                    np.asarray(packed[INPUTS_KEY])[row - offset], crop[:, ::-1] if flip else crop
                )
            expected = _softmax_top_k(to_numpy(teacher(np.asarray(packed[INPUTS_KEY]))), 3, 1.0)
            np.testing.assert_allclose(cache.probabilities[rows, view], expected, atol=2e-3)
            offset += size
    reshuffled = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(40, seed=2).batch(16)
    with pytest.raises(Exception, match="differs from the one the augmented teacher cache was built from"):
        list(cache.dataset(reshuffled))


@pytest.mark.parametrize("temperature,top_k", [(1.0, 5), (2.0, 4), (4.0, 4), (2.0, 10)])
def test_top_k_loss_is_within_tolerance_of_the_full_teacher(data, temperature, top_k):
    """The KD loss from top-k soft labels moves by less than half the mass left out (measured 0.25-0.4x)."""
    x, _ = data
    teacher, student = _teacher(), make_mlp(8, classes=10, name="student10")
    cache = AugmentedTeacherCache.build(teacher, x, MixUpViews(), views=2, top_k=top_k, temperature=temperature)
    loss = kd_losses.get("kd")
    packed = next(iter(cache.dataset(x, batch_size=96, shuffle=False, view=1)))
    inputs = np.asarray(packed[INPUTS_KEY])
    student_logits = student(inputs, training=False)
    full = float(loss(teacher(inputs, training=False), student_logits, temperature=temperature))
    cached = float(loss(np.asarray(packed[TEACHER_LOGITS_KEY]), student_logits, temperature=temperature))
    relative = abs(cached - full) / full
    assert relative < TOP_K_LOSS_FACTOR * cache.dropped_mass + 2e-3, (full, cached, relative, cache.dropped_mass)
    if top_k < 10:
        assert cache.dropped_mass > 0.01 and cached != full  # the bound is tested where mass is dropped


def test_function_matching_trains_from_the_cache_without_the_teacher(data):
    x, y = data
    teacher, student = _teacher(), make_mlp(8, classes=10, name="student10")
    cache = AugmentedTeacherCache.build(teacher, x, MixUpViews(), views=2, top_k=4, temperature=1.0)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.05), recipe="function_matching")  # MixUp, T 1, alpha 0
    teacher.set_weights([np.full_like(w, np.nan) for w in teacher.get_weights()])  # a teacher run would show
    before = [np.array(w) for w in student.get_weights()]
    history = distiller.fit(x, y, epochs=2, batch_size=16, teacher_cache=cache, verbose=0).history
    assert np.all(np.isfinite(history["distillation_loss"])) and history["distillation_loss"][0] > 0
    assert not all(np.allclose(a, b) for a, b in zip(before, student.get_weights()))
    distiller.compile(optimizer="sgd", recipe="function_matching", temperature=3.0)
    with pytest.raises(ValueError, match="at temperature 1.0, but the Distiller is compiled with 3.0"):
        distiller.fit(x, y, teacher_cache=cache, verbose=0)


def test_the_cache_s_views_replace_the_distiller_s_augmentation(data):
    """An augmentation applied on top of the cached views would poison the step here (it returns NaN)."""
    x, y = data
    teacher, student = _teacher(), make_mlp(8, classes=10, name="student10")
    cache = AugmentedTeacherCache.build(teacher, x, MixUpViews(), views=2, top_k=4, temperature=1.0)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", alpha=0.0, temperature=1.0, augmentation=lambda x, training=None: x * np.nan)
    history = distiller.fit(x, y, epochs=1, batch_size=32, teacher_cache=cache, verbose=0).history
    assert np.all(np.isfinite(history["distillation_loss"]))


def test_a_plain_cache_with_augmentation_points_to_the_augmented_one(data, teacher, student):
    x, y = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", augmentation=keras.layers.GaussianNoise(0.1))
    with pytest.raises(ValueError, match="AugmentedTeacherCache"):
        distiller.fit(x, y, teacher_cache=keras_kd.TeacherCache.build(teacher, x), verbose=0)
    with pytest.raises(TypeError, match="MixUpViews"):
        AugmentedTeacherCache.build(teacher, x, keras.layers.GaussianNoise(0.1))


def test_save_is_atomic_and_round_trips(tmp_path, data):
    x, _ = data
    cache = AugmentedTeacherCache.build(_teacher(), x, MixUpViews(0.4), views=2, top_k=3, temperature=2.0)
    path = str(tmp_path / "fm.npz")
    cache.save(path)
    assert os.listdir(tmp_path) == ["fm.npz"]  # the temporary file was renamed
    loaded = AugmentedTeacherCache.load(path)
    assert loaded.augmentation.alpha == 0.4 and (loaded.views, loaded.top_k, loaded.temperature) == (2, 3, 2.0)
    np.testing.assert_array_equal(loaded.probabilities, cache.probabilities)
    for key in cache.params:
        np.testing.assert_array_equal(loaded.params[key], cache.params[key])
    first = next(iter(cache.dataset(x, shuffle=False, view=1)))
    again = next(iter(loaded.dataset(x, shuffle=False, view=1)))
    np.testing.assert_array_equal(np.asarray(first[INPUTS_KEY]), np.asarray(again[INPUTS_KEY]))
    with pytest.raises(ValueError, match="other inputs"):
        loaded.dataset(x[:, ::-1].copy())
    assert NUM_FEATURES == x.shape[1]


def test_a_saved_crop_flip_cache_reloads_with_its_padding_and_flip(tmp_path):
    images = np.random.default_rng(2).normal(size=(12, 4, 4, 1)).astype("float32")
    teacher = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    cache = AugmentedTeacherCache.build(teacher, images, CropFlipViews(padding=1, flip=False), views=2, top_k=3)
    path = str(tmp_path / "crops.npz")
    cache.save(path)
    loaded = AugmentedTeacherCache.load(path)
    assert type(loaded.augmentation) is CropFlipViews
    assert (loaded.augmentation.padding, loaded.augmentation.flip) == (1, False)
    assert not loaded.params["flip"].any()
    first = next(iter(cache.dataset(images, shuffle=False, view=1)))
    again = next(iter(loaded.dataset(images, shuffle=False, view=1)))
    np.testing.assert_array_equal(np.asarray(first[INPUTS_KEY]), np.asarray(again[INPUTS_KEY]))


def test_a_saved_cache_of_a_dataset_keeps_its_batches_and_replays_on_it(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.normal(size=(20, 4, 4, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, rng.integers(0, 10, size=20))).batch(8)
    teacher = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    cache = AugmentedTeacherCache.build(teacher, dataset, CropFlipViews(padding=1), views=2, top_k=3)
    path = str(tmp_path / "dataset_cache.npz")
    cache.save(path)
    loaded = AugmentedTeacherCache.load(path)
    assert loaded.from_dataset and loaded.batch_sizes.tolist() == [8, 8, 4]
    np.testing.assert_array_equal(loaded.batch_hashes, cache.batch_hashes)
    for ours, theirs in zip(cache.dataset(dataset, view=1), loaded.dataset(dataset, view=1)):
        np.testing.assert_array_equal(np.asarray(ours[0][INPUTS_KEY]), np.asarray(theirs[0][INPUTS_KEY]))
    with pytest.raises(Exception, match="differs from the one the augmented teacher cache was built from"):
        list(loaded.dataset(dataset.unbatch().batch(5)))


def test_fit_arguments_become_the_pipeline_of_an_augmented_cache(data):
    """Arrays: batches of `batch_size` (32 by default), reshuffled each pass unless shuffle=False,
    the labels carried; Keras is told not to shuffle again. Per-row weights have nothing to weigh."""
    x, y = data
    cache = AugmentedTeacherCache.build(_teacher(), x, MixUpViews(0.4), views=2, top_k=3, temperature=2.0)

    def passes(dataset):
        return [np.concatenate([np.asarray(labels) for _, labels in dataset]) for _ in range(2)]

    dataset, y_out, kwargs = cache.attach_for_fit(x, y, {"epochs": 3}, temperature=2.0)
    assert y_out is None and kwargs == {"epochs": 3, "shuffle": False}
    assert [len(labels) for _, labels in dataset] == [32, 32, 32]
    first, second = passes(dataset)
    assert sorted(first.tolist()) == sorted(y.tolist()) and not np.array_equal(first, second)
    ordered, _, _ = cache.attach_for_fit(x, y, {"shuffle": False, "batch_size": 40})
    assert [len(labels) for _, labels in ordered] == [40, 40, 16]
    for labels in passes(ordered):
        np.testing.assert_array_equal(labels, y)
    for refused in ({"sample_weight": np.ones(len(x))}, {"class_weight": {0: 1.0, 1: 2.0, 2: 1.0}}):
        with pytest.raises(ValueError, match="sample_weight`/`class_weight"):
            cache.attach_for_fit(x, y, refused)
    with pytest.raises(ValueError, match="compile with temperature=2.0, or rebuild the cache at 2.5"):
        cache.attach_for_fit(x, y, {}, temperature=2.5)


def test_mixup_views_draw_any_partner_with_beta_weights_and_refuse_alpha_0():
    views = MixUpViews()
    assert views.alpha == 1.0  # Beta(1, 1): a uniform mixing weight
    params = views.sample(np.random.default_rng(0), (400,), partners=3)
    assert set(params["partner"].tolist()) == {0, 1, 2}
    assert 0.0 < params["lam"].min() < 0.05 and 0.95 < params["lam"].max() < 1.0
    with pytest.raises(ValueError, match="alpha > 0"):
        MixUpViews(alpha=0.0)


@pytest.mark.parametrize("top_k", [3, 9])
def test_soft_logits_rebuild_the_kept_classes_and_spread_the_rest_evenly(top_k):
    from keras_kd.teacher.augmented import soft_logits

    p = np.random.default_rng(5).dirichlet(np.ones(10), size=4)
    classes = np.argsort(-p, axis=-1)[:, :top_k]
    kept = np.take_along_axis(p, classes, axis=-1)
    want = np.repeat((1 - kept.sum(-1, keepdims=True)) / (10 - top_k), 10, axis=-1)
    np.put_along_axis(want, classes, kept, axis=-1)
    got = np.exp(np.asarray(soft_logits(kept.astype("float32"), classes, 10, 2.0)) / 2.0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_mixup_views_of_a_dataset_mix_partners_within_each_batch(tmp_path, data):
    x, y = data
    teacher = _teacher()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)  # batches of 20 and a last one of 16
    cache = AugmentedTeacherCache.build(
        teacher, dataset, MixUpViews(0.5), views=2, top_k=3, temperature=TEMPERATURE, seed=3
    )
    assert cache.seed == 3 and AugmentedTeacherCache.load(_saved(cache, tmp_path)).seed == 3
    offset = 0
    for packed, labels in cache.dataset(dataset, view=1):
        rows = np.arange(offset, offset + len(labels))
        lam, partner = cache.params["lam"][rows, 1], cache.params["partner"][rows, 1]
        assert partner.max() < len(rows)  # a partner of the same batch
        built = lam[:, None] * x[rows] + (1.0 - lam[:, None]) * x[rows][partner]
        np.testing.assert_allclose(np.asarray(packed[INPUTS_KEY]), built, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(labels), y[rows])
        # the stored probabilities are the teacher's on that same mixed view
        expected = _softmax_top_k(to_numpy(teacher(built, training=False)), 3, TEMPERATURE)
        np.testing.assert_allclose(cache.probabilities[rows, 1], expected, atol=2e-3)
        offset += len(labels)
    assert offset == len(x)
    # given to fit: the dataset keeps its own batches and order, and Keras is told not to shuffle
    replay, y_out, kwargs = cache.attach_for_fit(dataset, None, {"epochs": 2, "shuffle": True}, temperature=TEMPERATURE)
    assert y_out is None and kwargs == {"epochs": 2, "shuffle": False}
    np.testing.assert_array_equal(np.concatenate([np.asarray(labels) for _, labels in replay]), y)
    one_batch = AugmentedTeacherCache.build(teacher, dataset.take(1), MixUpViews(0.5), views=2, top_k=3)
    assert one_batch.num_examples == 20 and set(one_batch.params) == {"partner", "lam"}


def _saved(cache, tmp_path):
    path = str(tmp_path / "cache.npz")
    cache.save(path)
    return path


def test_build_checks_its_bounds_and_keeps_its_defaults(tmp_path, data):
    x, _ = data
    teacher = _teacher()
    for bad in ({"views": 0}, {"top_k": 0}):
        with pytest.raises(ValueError, match="Need views >= 1 and top_k >= 1"):
            AugmentedTeacherCache.build(teacher, x, MixUpViews(), **bad)
    for bad in (0.0, -1.0, "warm"):  # the one temperature check of keras_kd.checks
        with pytest.raises(ValueError, match="`temperature` must be"):
            AugmentedTeacherCache.build(teacher, x, MixUpViews(), temperature=bad)
    smallest = AugmentedTeacherCache.build(teacher, x[:1], MixUpViews(), views=1, top_k=1, temperature=0.05)
    assert (smallest.num_examples, smallest.views, smallest.top_k) == (1, 1, 1)
    default = AugmentedTeacherCache.build(teacher, x, MixUpViews())
    assert (default.views, default.top_k, default.temperature, default.seed) == (4, 5, 1.0, 0)
    seeded = AugmentedTeacherCache.build(teacher, x, MixUpViews(), seed=0)
    np.testing.assert_array_equal(default.params["lam"], seeded.params["lam"])
    other = AugmentedTeacherCache.build(teacher, x, MixUpViews(), seed=7)
    assert other.seed == 7 and AugmentedTeacherCache.load(_saved(other, tmp_path)).seed == 7
    assert not np.array_equal(default.params["lam"], other.params["lam"])
    crop = CropFlipViews()
    assert (crop.padding, crop.flip) == (4, True)


def test_replay_of_arrays_batches_32_and_reshuffles_by_default(data):
    x, y = data
    cache = AugmentedTeacherCache.build(_teacher(), x, MixUpViews(), views=2, top_k=3)
    epochs = [[np.asarray(labels) for _, labels in cache.dataset(x, y)] for _ in range(2)]
    assert [len(batch) for batch in epochs[0]] == [32, 32, 32]
    first, second = (np.concatenate(epoch) for epoch in epochs)
    np.testing.assert_array_equal(np.sort(first), np.sort(y))
    assert not np.array_equal(first, y) and not np.array_equal(first, second)  # shuffled anew each epoch
