"""Transfer sets: the label loss and the metrics see labelled rows only, the soft targets all rows."""

import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.backend import keras
from tests import reference
from tests.test_distiller import compiled


def _with_missing(y, every=3):
    """`y` with every `every`-th label marked missing."""
    y = np.array(y, dtype="int64")
    y[::every] = keras_kd.MISSING_LABEL
    return y


@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_label_loss_averages_over_labelled_rows_only(data, teacher, student, alpha):
    x, y = data
    y_missing = _with_missing(y)
    labelled = y_missing >= 0
    distiller = compiled(student, teacher, alpha=alpha, temperature=2.0)
    results = distiller.evaluate(x, y_missing, batch_size=len(x), verbose=0, return_dict=True)
    s, t = np.asarray(student(x)), np.asarray(teacher(x, training=False))
    student_loss = reference.crossentropy(y[labelled], s[labelled]).mean()  # by hand, labelled rows
    distillation_loss = reference.hinton_kd(t, s, 2.0).mean()  # all rows
    assert results["student_loss"] == pytest.approx(student_loss, rel=1e-4)
    assert results["distillation_loss"] == pytest.approx(distillation_loss, rel=1e-4)
    assert results["loss"] == pytest.approx(alpha * student_loss + (1 - alpha) * distillation_loss, rel=1e-4)
    accuracy = np.mean(np.argmax(s[labelled], -1) == y[labelled])
    assert results["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_one_hot_rows_of_zeros_are_missing_labels(data, teacher, student):
    x, y = data
    one_hot = np.eye(3, dtype="float32")[y]
    one_hot[::3] = 0.0
    sparse = _with_missing(y)
    distiller = compiled(student, teacher, alpha=0.5, metrics=None)
    a = distiller.evaluate(x, sparse, batch_size=len(x), verbose=0, return_dict=True)
    b = distiller.evaluate(x, one_hot, batch_size=len(x), verbose=0, return_dict=True)
    for key in ("loss", "student_loss", "distillation_loss"):
        assert a[key] == pytest.approx(b[key], rel=1e-5)


def test_sample_weight_and_missing_labels_combine(data, teacher, student):
    x, y = data
    y_missing = _with_missing(y)
    weights = np.linspace(0.5, 1.5, len(x)).astype("float32")
    distiller = compiled(student, teacher, alpha=0.5, temperature=3.0)
    results = distiller.evaluate(x, y_missing, sample_weight=weights, batch_size=len(x), verbose=0, return_dict=True)
    s = np.asarray(student(x))
    labelled = y_missing >= 0
    # Keras's mean divides by the row count; over labelled rows that is their count.
    want = np.sum(reference.crossentropy(y[labelled], s[labelled]) * weights[labelled]) / labelled.sum()
    assert results["student_loss"] == pytest.approx(want, rel=1e-4)


def test_a_batch_without_labels_has_no_label_loss_and_trains_on_soft_targets(data, teacher, student):
    x, y = data
    distiller = compiled(student, teacher, alpha=0.5)
    y_none = np.full_like(y, keras_kd.MISSING_LABEL)
    results = distiller.evaluate(x, y_none, batch_size=len(x), verbose=0, return_dict=True)
    assert results["student_loss"] == 0.0
    before = [w.copy() for w in student.get_weights()]
    distiller.fit(x, y_none, epochs=1, batch_size=32, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in student.get_weights())
    assert any(not np.array_equal(b, a) for b, a in zip(before, student.get_weights()))


def test_unlabelled_rows_do_not_move_the_label_term(data, teacher):
    """With alpha=1 (labels only), unlabelled rows contribute no gradient at all."""
    from tests.conftest import make_mlp

    x, y = data
    a, b = make_mlp(4), make_mlp(4)
    b.set_weights(a.get_weights())
    pool = np.random.default_rng(1).normal(size=(32, x.shape[1])).astype("float32")
    xs, ys = keras_kd.transfer_set((x[:32], y[:32]), pool, shuffle=False)
    compiled(a, teacher, alpha=1.0, optimizer=keras.optimizers.SGD(0.1)).fit(
        xs, ys, epochs=1, batch_size=64, shuffle=False, verbose=0
    )
    compiled(b, teacher, alpha=1.0, optimizer=keras.optimizers.SGD(0.1)).fit(
        x[:32], y[:32], epochs=1, batch_size=32, shuffle=False, verbose=0
    )
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_transfer_set_arrays():
    x, y = np.ones((5, 2), "float32"), np.arange(5)
    pool = np.zeros((3, 2), "float32")
    xs, ys = keras_kd.transfer_set((x, y), pool, shuffle=False)
    assert xs.shape == (8, 2) and list(ys) == [0, 1, 2, 3, 4, -1, -1, -1]
    xs, ys = keras_kd.transfer_set((x, y), pool, seed=3)
    assert sorted(ys.tolist()) == [-1, -1, -1, 0, 1, 2, 3, 4]
    assert np.all(xs[ys == -1] == 0) and np.all(xs[ys >= 0] == 1)  # rows stay with their labels
    with pytest.raises(ValueError, match="same kind of input"):
        keras_kd.transfer_set((x, y), np.zeros((3, 4)))


def test_transfer_set_datasets_train(data, teacher, student):
    x, y = data
    labeled = tf.data.Dataset.from_tensor_slices((x[:48], y[:48]))
    unlabeled = tf.data.Dataset.from_tensor_slices(x[48:])
    dataset = keras_kd.transfer_set(labeled, unlabeled)
    labels = np.array([int(label) for _, label in dataset])
    assert (labels == -1).sum() == 48 and (labels >= 0).sum() == 48
    history = compiled(student, teacher, alpha=0.5).fit(dataset.shuffle(96).batch(16), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_losses_that_need_a_target_class_use_the_teachers_on_unlabelled_rows(data, teacher, student):
    x, y = data
    y_missing = _with_missing(y)
    teacher_top = np.argmax(np.asarray(teacher(x, training=False)), -1)
    y_teacher = np.where(y_missing >= 0, y_missing, teacher_top)
    distiller = compiled(student, teacher, alpha=0.5, metrics=None, distillation_loss_fn="dkd")
    with_missing = distiller.evaluate(x, y_missing, batch_size=len(x), verbose=0, return_dict=True)
    with_teacher = distiller.evaluate(x, y_teacher, batch_size=len(x), verbose=0, return_dict=True)
    assert with_missing["distillation_loss"] == pytest.approx(with_teacher["distillation_loss"], rel=1e-5)
    assert with_missing["distillation_loss"] != pytest.approx(
        distiller.evaluate(
            x,
            np.where(y_missing >= 0, y_missing, (teacher_top + 1) % 3),
            batch_size=len(x),
            verbose=0,
            return_dict=True,
        )["distillation_loss"],
        rel=1e-3,
    )


def test_transfer_set_shuffles_by_default_with_seed_0_and_marks_one_hot_datasets_with_zero_rows():
    x, y = np.arange(20, dtype="float32").reshape(10, 2), np.arange(10) % 3
    pool = np.full((6, 2), 100.0, "float32")
    xs, ys = keras_kd.transfer_set((x, y), pool)
    order = np.random.default_rng(0).permutation(16)  # the documented default: shuffled, seed 0
    np.testing.assert_array_equal(xs, np.concatenate([x, pool])[order])
    np.testing.assert_array_equal(ys, np.concatenate([y, np.full(6, -1)])[order])
    one_hot = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[y]))
    both = list(keras_kd.transfer_set(one_hot, tf.data.Dataset.from_tensor_slices(pool)))
    labels = np.array([np.asarray(label) for _, label in both])
    assert labels.shape == (16, 3) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels[:10], np.eye(3)[y])
    np.testing.assert_array_equal(labels[10:], 0.0)  # an all-zero row marks a missing one-hot label


def test_transfer_set_keeps_dtypes_and_marks_unlabelled_one_hot_rows_with_zeros():
    rng = np.random.default_rng(0)
    x_few, y_few = rng.normal(size=(6, 3)).astype("float32"), np.array([0, 1, 2, 0, 1, 2], "int32")
    pool = rng.normal(size=(4, 3))  # float64: takes the labelled inputs' dtype
    x, y = keras_kd.transfer_set((x_few, y_few), pool, shuffle=False)
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, 2, 0, 1, 2, -1, -1, -1, -1])
    np.testing.assert_array_equal(x[6:], pool.astype("float32"))
    for one_hot in (np.eye(3, dtype="float32")[y_few], np.eye(3, dtype="float32")[rng.integers(0, 3, (6, 2))]):
        x, y = keras_kd.transfer_set((x_few, one_hot), pool, shuffle=False)
        assert y.shape == (10,) + one_hot.shape[1:] and y.dtype == np.float32
        np.testing.assert_array_equal(y[:6], one_hot)
        assert not y[6:].any()  # all-zero rows: no label
    for bad in ((x_few, y_few, np.ones(6)), x_few[:2]):  # a triple, or an array of two rows, is not (x, y)
        with pytest.raises(TypeError, match="must be a pair"):
            keras_kd.transfer_set(bad, pool)
    labelled = tf.data.Dataset.from_tensor_slices((x_few, np.eye(3, dtype="int32")[y_few]))
    pool_dataset = tf.data.Dataset.from_tensor_slices(pool.astype("float32"))
    rows = list(keras_kd.transfer_set(labelled, pool_dataset).as_numpy_iterator())
    assert len(rows) == 10 and rows[-1][1].dtype == np.int32 and not rows[-1][1].any()
