"""`TeacherCache` on `tf.data` datasets (and still on arrays): same training as the teacher running,
logits lined up batch by batch, datasets in another order or with other content refused."""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras
from keras_kd.data.keys import INDEX_KEY, INPUTS_KEY, TEACHER_LOGITS_KEY, with_indices
from tests.conftest import make_mlp, weights_of

tf = pytest.importorskip("tensorflow")

BATCH = 20  # 96 examples: four batches of 20 and a last one of 16


def _dataset(x, y, batch=BATCH):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(tf.data.AUTOTUNE)


def _distill(student, teacher, data, y=None, cache=None, epochs=2):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=0.3, temperature=3.0)
    keras.utils.set_random_seed(5)
    extra = {"batch_size": 16} if y is not None else {"shuffle": False}  # a dataset keeps its order
    distiller.fit(data, y, epochs=epochs, verbose=0, teacher_cache=cache, **extra)
    return distiller


def _twins():
    first, second = make_mlp(4), make_mlp(4)
    second.set_weights(first.get_weights())
    return first, second


def test_training_from_a_cache_on_a_dataset_matches_the_teacher_running(data, teacher):
    x, y = data
    running, cached = _twins()
    initial = weights_of(running)
    _distill(running, teacher, _dataset(x, y))
    _distill(cached, teacher, _dataset(x, y), cache=keras_kd.TeacherCache.build(teacher, _dataset(x, y)))
    for a, b, start in zip(weights_of(running), weights_of(cached), initial):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(a, start)  # it trained


def test_misaligned_logits_would_train_differently(data, teacher):
    """The comparison above can fail: logits one batch off give other weights."""
    x, y = data
    running, shifted = _twins()
    _distill(running, teacher, _dataset(x, y))
    cache = keras_kd.TeacherCache.build(teacher, _dataset(x, y))
    cache.logits = np.roll(cache.logits, BATCH, axis=0)  # every batch gets its neighbour's logits
    _distill(shifted, teacher, _dataset(x, y), cache=cache)
    assert not all(np.allclose(a, b, atol=1e-4) for a, b in zip(weights_of(running), weights_of(shifted)))


def test_logits_line_up_with_each_batch_including_a_smaller_last_one(data, teacher):
    x, y = data
    cache = keras_kd.TeacherCache.build(teacher, _dataset(x, y))
    assert cache.batch_sizes.tolist() == [20, 20, 20, 20, 16] and cache.num_examples == 96
    expected = np.asarray(teacher(x, training=False))
    np.testing.assert_allclose(cache.logits, expected, rtol=1e-5, atol=1e-6)
    seen = 0
    for packed, labels in cache.attach(_dataset(x, y)):
        batch = len(labels)
        np.testing.assert_array_equal(packed[INPUTS_KEY], x[seen : seen + batch])
        np.testing.assert_array_equal(labels, y[seen : seen + batch])
        np.testing.assert_allclose(packed[TEACHER_LOGITS_KEY], expected[seen : seen + batch], rtol=1e-5, atol=1e-6)
        seen += batch
    assert seen == len(x)


def test_a_dataset_that_reshuffles_each_pass_is_refused(data, teacher, student):
    x, y = data
    reshuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=3).batch(BATCH)
    cache = keras_kd.TeacherCache.build(teacher, reshuffled)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match="reshuffles on every pass.*before `shuffle`"):
        distiller.fit(reshuffled, teacher_cache=cache, verbose=0)
    # Shuffled once, the same order on every pass: accepted.
    fixed = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=3, reshuffle_each_iteration=False)
    fixed = fixed.batch(BATCH)
    distiller.fit(fixed, epochs=2, shuffle=False, teacher_cache=keras_kd.TeacherCache.build(teacher, fixed), verbose=0)


def test_other_content_sizes_and_kinds_are_refused(data, teacher):
    x, y = data
    cache = keras_kd.TeacherCache.build(teacher, _dataset(x, y))
    with pytest.raises(ValueError, match="batch 0 differs"):
        cache.check(_dataset(x + 1.0, y))
    with pytest.raises(ValueError, match="batch 0 differs"):
        cache.check(_dataset(x, y, batch=32))
    with pytest.raises(ValueError, match="5 batches, but `x` yields 3"):
        cache.check(_dataset(x[:60], y[:60]))
    with pytest.raises(ValueError, match="infinite dataset"):
        cache.check(_dataset(x, y).repeat())
    with pytest.raises(ValueError, match="built from a tf.data.Dataset"):
        cache.check(x)
    with pytest.raises(ValueError, match="built from arrays"):
        keras_kd.TeacherCache.build(teacher, x).check(_dataset(x, y))


def test_a_reshuffle_after_the_checked_passes_stops_training(data, teacher, student):
    """Order checked again batch by batch while training: a dataset that changes on a later pass fails."""
    x, y = data
    passes = []

    def generate():
        passes.append(1)
        order = np.arange(len(x)) if len(passes) <= 2 else np.arange(len(x))[::-1]  # build, check, then reversed
        for i in order:
            yield x[i], y[i]

    signature = (tf.TensorSpec((x.shape[1],), tf.float32), tf.TensorSpec((), tf.int64))
    changing = tf.data.Dataset.from_generator(generate, output_signature=signature).batch(BATCH)
    cache = keras_kd.TeacherCache.build(teacher, changing)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam")
    with pytest.raises(Exception, match="differs from the one the teacher cache was built from"):
        distiller.fit(changing, epochs=1, teacher_cache=cache, verbose=0)


def test_indices_pass_through_and_a_saved_cache_round_trips(tmp_path, data, teacher):
    x, y = data
    indexed = tf.data.Dataset.from_tensor_slices((with_indices(x), y)).batch(BATCH)
    cache = keras_kd.TeacherCache.build(teacher, indexed)
    packed, _ = next(iter(cache.attach(indexed)))
    np.testing.assert_array_equal(packed[INDEX_KEY], np.arange(BATCH))
    cache.save(str(tmp_path / "cache.npz"))
    loaded = keras_kd.TeacherCache.load(str(tmp_path / "cache.npz"))
    assert loaded.from_dataset and loaded.input_fingerprint == cache.input_fingerprint
    np.testing.assert_array_equal(loaded.batch_sizes, cache.batch_sizes)
    loaded.check(indexed)


def test_arrays_still_work(data, teacher):
    x, y = data
    running, cached = _twins()
    _distill(running, teacher, x, y)
    _distill(cached, teacher, x, y, cache=keras_kd.TeacherCache.build(teacher, x))
    for a, b in zip(weights_of(running), weights_of(cached)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="fingerprints"):
        keras_kd.TeacherCache.build(teacher, x).check(x[::-1].copy())


def test_a_saved_cache_of_arrays_and_an_older_file_load_and_check_their_inputs(tmp_path, data, teacher):
    x, _ = data
    cache = keras_kd.TeacherCache.build(teacher, x)
    path = str(tmp_path / "arrays.npz")
    cache.save(path)
    loaded = keras_kd.TeacherCache.load(path)
    assert not loaded.from_dataset and loaded.batch_sizes is None
    np.testing.assert_array_equal(loaded.logits, cache.logits)
    loaded.check(x)
    with pytest.raises(ValueError, match="fingerprints"):
        loaded.check(x[::-1].copy())
    # A file written before top-k caches existed kept the logits under "logits".
    older = str(tmp_path / "older.npz")
    np.savez(older, fingerprint=np.array(cache.input_fingerprint), num_examples=np.array(len(x)), logits=cache.logits)
    np.testing.assert_array_equal(keras_kd.TeacherCache.load(older).logits, cache.logits)


def test_a_dataset_differing_only_in_its_last_batch_or_in_length_is_refused(data, teacher):
    x, y = data
    cache = keras_kd.TeacherCache.build(teacher, _dataset(x, y))
    changed = x.copy()
    changed[-1, 0] += 1.0  # the last batch only
    with pytest.raises(ValueError, match="batch 4 differs from batch 4 of `x`"):
        cache.check(_dataset(changed, y))
    with pytest.raises(ValueError, match="5 batches, but `x` yields more"):
        cache.check(_dataset(x, y).concatenate(_dataset(x[:20], y[:20])))
    with pytest.raises(ValueError, match="5 batches, but `x` yields 0"):
        cache.check(_dataset(x, y).take(0))
    distiller = keras_kd.Distiller(student=make_mlp(4), teacher=teacher)
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="batch 0 differs from batch 0 of `x`"):
        distiller.fit(_dataset(x + 1.0, y), teacher_cache=cache, verbose=0)


def test_fingerprints_see_every_row_of_small_arrays_and_the_shape_and_dtype():
    from keras_kd.teacher.batches import fingerprint

    x = np.arange(24, dtype="float32").reshape(6, 4)
    changed = x.copy()
    changed[1, 2] = -1.0  # an odd row
    assert fingerprint(changed) != fingerprint(x)
    assert fingerprint(x.reshape(6, 2, 2)) != fingerprint(x)  # the same bytes, another shape
    assert fingerprint(x.view("int32")) != fingerprint(x)  # the same bytes, another dtype
    assert fingerprint({"a": x, "b": x}) != fingerprint({"a": x, "b": changed})
    assert fingerprint(x.copy()) == fingerprint(x)
    large = np.zeros((10_000, 2), "float32")  # more rows than are hashed: every other one here
    moved = large.copy()
    moved[9_998, 1] = 1.0
    assert fingerprint(moved) != fingerprint(large)


def test_cached_logits_are_float32_and_their_bytes_are_estimated_per_row(teacher, data):
    from keras_kd.teacher.default import _logit_bytes

    x, _ = data
    cache = keras_kd.TeacherCache(np.zeros((len(x), 3), "float64"), "fingerprint", len(x))
    assert cache.logits.dtype == np.float32
    assert _logit_bytes(teacher, x) == len(x) * 3 * 4
    inputs = keras.Input((x.shape[1],), name="features")
    named = keras.Model({"features": inputs}, teacher(inputs))
    assert _logit_bytes(named, {"features": x}) == len(x) * 3 * 4


def test_an_augmented_cache_given_to_fit_keeps_the_labels(data):
    from keras_kd.teacher.augmented import AugmentedTeacherCache, MixUpViews

    x, y = data
    teacher = make_mlp(8, name="teacher_aug")
    cache = AugmentedTeacherCache.build(teacher, x, MixUpViews(), views=2, top_k=3, temperature=2.0)
    distiller = keras_kd.Distiller(student=make_mlp(4), teacher=teacher)
    distiller.compile(optimizer="sgd", alpha=0.5, temperature=2.0)
    history = distiller.fit(x, y, epochs=1, batch_size=32, verbose=0, teacher_cache=cache).history
    assert history["student_loss"][0] > 0.1  # the cross-entropy on the labels of the mixed views


def _dropout_teacher(inputs):
    """A teacher whose training mode would change its logits (Dropout 0.5): a cache must run it in inference."""
    keras.utils.set_random_seed(3)
    if isinstance(inputs, dict):
        layers = {name: keras.Input((4,), name=name) for name in inputs}
        hidden = keras.layers.Concatenate()(list(layers.values()))
    else:
        layers = keras.Input((inputs.shape[1],))
        hidden = layers
    hidden = keras.layers.Dropout(0.5)(keras.layers.Dense(16, activation="relu")(hidden))
    return keras.Model(layers, keras.layers.Dense(3)(hidden))


@pytest.mark.parametrize("form", ["array", "dict", "dataset"])
def test_a_cache_holds_the_teachers_inference_logits_in_every_input_form(form):
    x = np.random.default_rng(4).normal(size=(45, 8)).astype("float32")
    inputs = {"left": x[:, :4], "right": x[:, 4:]} if form == "dict" else x
    teacher = _dropout_teacher(inputs)
    source = tf.data.Dataset.from_tensor_slices(x).batch(10) if form == "dataset" else inputs
    cache = keras_kd.TeacherCache.build(teacher, source, batch_size=16)
    expected = np.asarray(teacher(inputs, training=False))
    np.testing.assert_allclose(cache.logits, expected, rtol=1e-5, atol=1e-6)


def test_one_row_and_a_list_of_one_teacher_are_cached():
    x = np.random.default_rng(5).normal(size=(1, 8)).astype("float32")
    teacher = _dropout_teacher(x)
    for given in (teacher, [teacher], (teacher,)):
        cache = keras_kd.TeacherCache.build(given, x)
        np.testing.assert_allclose(cache.logits, np.asarray(teacher(x, training=False)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="holds no samples"):
        keras_kd.TeacherCache.build(teacher, x[:0])


def test_a_teacher_with_its_own_preprocessor_is_called_not_predicted():
    # A keras-hub task's `predict` preprocesses raw inputs: on the inputs a cache holds it would run
    # the preprocessor a second time. The cache calls such a model on each batch instead.
    x = np.random.default_rng(6).normal(size=(30, 8)).astype("float32")
    inner = _dropout_teacher(x)

    class Task(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner, self.preprocessor = inner, "a preprocessor"

        def call(self, inputs, training=None):
            return self.inner(inputs, training=training)

        def predict(self, *args, **kwargs):
            raise AssertionError("predict would preprocess the inputs again")

    cache = keras_kd.TeacherCache.build(Task(), x, batch_size=8)
    np.testing.assert_allclose(cache.logits, np.asarray(inner(x, training=False)), rtol=1e-5, atol=1e-6)
