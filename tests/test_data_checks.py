"""Bad data is refused with a ValueError before (or at) the first step, on every backend."""

import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.backend import keras
from keras_kd.data.checks import PEEK_ROWS
from tests import reference
from tests.conftest import NUM_CLASSES, NUM_FEATURES, make_mlp, weights_of


@pytest.fixture
def distiller(teacher, student):
    model = keras_kd.Distiller(student=student, teacher=teacher)
    model.compile(optimizer="adam", alpha=0.5, temperature=2.0)
    return model


def _fit(distiller, *args, **kwargs):
    if isinstance(args[0], tf.data.Dataset):
        return distiller.fit(*args, epochs=1, verbose=0, shuffle=False, **kwargs)
    return distiller.fit(*args, epochs=1, batch_size=16, verbose=0, **kwargs)


def test_nan_in_x_is_refused_before_training(distiller, data):
    x, y = data
    x = x.copy()
    x[5, 3] = np.nan
    before = weights_of(distiller.student)
    with pytest.raises(ValueError, match=r"`x` holds a non-finite input value \(nan\) at index \(5, 3\)"):
        _fit(distiller, x, y)
    for old, new in zip(before, weights_of(distiller.student)):
        np.testing.assert_array_equal(old, new)


def test_inf_in_the_first_dataset_batch_names_the_batch(distiller, data):
    x, y = data
    x = x.copy()
    x[20, 0] = np.inf
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with pytest.raises(ValueError, match=r"non-finite input value \(inf\) in batch 1, at index \(4, 0\)"):
        _fit(distiller, dataset)


def test_check_numerics_finds_nan_in_a_late_dataset_batch(distiller, data):
    x, y = data
    x = x.copy()
    x[80, 1] = np.nan  # batch 5 of 16: past the batches read before training
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with pytest.raises(ValueError, match="non-finite values .* in batch 5"):
        _fit(distiller, dataset, check_numerics=True)
    assert all(np.isfinite(w).all() for w in weights_of(distiller.student))


def test_check_numerics_passes_batches_without_floats():
    """Token ids and class indices hold no floats: nothing to check, and the run trains."""
    rng = np.random.default_rng(3)
    tokens, labels = rng.integers(0, 20, size=(48, 5)), rng.integers(0, NUM_CLASSES, size=48)

    def model(width):
        return keras.Sequential(
            [
                keras.Input((5,), dtype="int32"),
                keras.layers.Embedding(20, width),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(NUM_CLASSES),
            ]
        )

    distiller = keras_kd.Distiller(student=model(4), teacher=model(8))
    distiller.compile(optimizer="adam")
    before = weights_of(distiller.student)
    history = _fit(distiller, tf.data.Dataset.from_tensor_slices((tokens, labels)).batch(16), check_numerics=True)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights_of(distiller.student)))


def test_check_numerics_reads_all_of_an_array(distiller, data):
    x, y = data
    x, y = np.concatenate([x] * 12), np.concatenate([y] * 12)
    x[PEEK_ROWS + 5, 2] = -np.inf
    _fit(distiller, x[: PEEK_ROWS + 1], y[: PEEK_ROWS + 1])  # clean rows: trains
    with pytest.raises(ValueError, match=rf"at index \({PEEK_ROWS + 5}, 2\)"):
        _fit(distiller, x, y, check_numerics=True)


def test_nan_in_sample_weight(distiller, data):
    x, y = data
    weights = np.ones(len(x), "float32")
    weights[7] = np.nan
    with pytest.raises(ValueError, match="`sample_weight` holds a non-finite sample weight"):
        _fit(distiller, x, y, sample_weight=weights)


class _Blowup(keras.callbacks.Callback):
    """Sets the student's weights to inf before batch 2, as a diverging run would."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 2:
            for variable in self.model.student.trainable_variables:
                variable.assign(np.full(variable.shape, np.inf, "float32"))


def test_non_finite_loss_stops_training_with_the_batch_index(distiller, data):
    x, y = data
    before = weights_of(distiller.student)
    with pytest.raises(ValueError, match=r"non-finite \(NaN or inf\) at batch 2 of epoch 1"):
        _fit(distiller, x, y, callbacks=[_Blowup()])
    for old, new in zip(before, weights_of(distiller.student)):  # the epoch's starting weights, not inf
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("form", ["array", "dataset"])
def test_nan_in_a_late_batch_stops_the_run_naming_it_without_check_numerics(distiller, data, form):
    """Past the rows read before training, with no per-batch check asked for: the step records the
    batch, and the run stops saying which, with the student's last finite weights (epoch 2's start)."""
    x, y = data
    x, y = np.concatenate([x] * 12), np.concatenate([y] * 12)  # 1,152 rows: 72 batches of 16
    x[PEEK_ROWS + 40, 1] = np.nan  # batch 66 of each epoch, past the 1,024 rows peeked at
    clean = x.copy()
    clean[PEEK_ROWS + 40, 1] = 0.0
    distiller.fit(clean, y, epochs=1, batch_size=16, verbose=0, shuffle=False)  # epoch 1 trains cleanly
    before = weights_of(distiller.student)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16) if form == "dataset" else x
    labels = None if form == "dataset" else y
    with pytest.raises(ValueError, match=r"non-finite \(NaN or inf\) at batch 66 of epoch 2"):
        distiller.fit(
            data,
            labels,
            epochs=2,
            initial_epoch=1,
            batch_size=None if form == "dataset" else 16,
            verbose=0,
            shuffle=False,
        )
    after = weights_of(distiller.student)
    assert all(np.isfinite(w).all() for w in after)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("loss", [None, "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("bad", [NUM_CLASSES, 12, -2])
def test_label_outside_the_classes(teacher, student, data, loss, bad):
    x, y = data
    y = y.copy()
    y[9] = bad
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", student_loss_fn=loss)
    with pytest.raises(ValueError, match=rf"`y` holds class indices outside \[0, {NUM_CLASSES}\): \[{bad}\]"):
        _fit(distiller, x, y)


def test_missing_label_sentinel_still_trains(distiller, data):
    x, y = data
    x_all, y_all = keras_kd.transfer_set((x[:20], y[:20]), x[20:])
    assert (y_all == keras_kd.MISSING_LABEL).sum() == len(x) - 20
    history = _fit(distiller, x_all, y_all)
    assert np.isfinite(history.history["loss"]).all()


def test_fractional_class_index(distiller, data):
    x, y = data
    y = y.astype("float32")
    y[3] = 1.5
    with pytest.raises(ValueError, match="not a whole number"):
        _fit(distiller, x, y)


@pytest.mark.parametrize("width", [2, NUM_CLASSES + 2])
def test_labels_neither_sparse_nor_one_hot(distiller, data, width):
    x, _ = data
    y = np.zeros((len(x), width), "float32")
    with pytest.raises(
        ValueError,
        match=rf"`y` has shape \({len(x)}, {width}\): neither class indices \(shape \(batch,\), or with a trailing 1\) "
        rf"nor one-hot rows of the student's {NUM_CLASSES} classes \(shape \(batch, {NUM_CLASSES}\)\)\. Pass",
    ):
        _fit(distiller, x, y)


def test_one_hot_and_column_labels_train(distiller, data, teacher):
    """One-hot rows and a column of indices are the same labels: the loss on them is the loss on the
    class indices, computed here."""
    x, y = data
    student = distiller.student
    want = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    s_logits, t_logits = np.asarray(student(x)), np.asarray(teacher(x, training=False))
    assert want["student_loss"] == pytest.approx(reference.crossentropy(y, s_logits).mean(), rel=1e-5)
    for labels in (keras.utils.to_categorical(y, NUM_CLASSES), y.reshape(-1, 1)):
        got = distiller.evaluate(x, labels, batch_size=len(x), verbose=0, return_dict=True)
        assert got["student_loss"] == pytest.approx(want["student_loss"], rel=1e-5)
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert want["distillation_loss"] == pytest.approx(reference.hinton_kd(t_logits, s_logits, 2.0).mean(), rel=1e-5)
    before = weights_of(student)
    _fit(distiller, x, keras.utils.to_categorical(y, NUM_CLASSES))
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights_of(student))), "one-hot labels did not train"


def test_teacher_with_other_inputs_is_refused_at_construction(student):
    teacher = keras.Sequential([keras.Input((NUM_FEATURES + 4,)), keras.layers.Dense(NUM_CLASSES)])
    with pytest.raises(
        ValueError,
        match=rf"`teacher` takes inputs of shape \(None, {NUM_FEATURES + 4}\), but "
        rf"the student takes \(None, {NUM_FEATURES}\)",
    ):
        keras_kd.Distiller(student=student, teacher=teacher)


def test_x_of_another_shape_than_the_models_take(distiller):
    x = np.zeros((32, NUM_FEATURES + 1), "float32")
    with pytest.raises(ValueError, match=rf"`x` holds examples of shape \({NUM_FEATURES + 1},\), but the student"):
        _fit(distiller, x, np.zeros(32, "int64"))


def test_dataset_filtered_to_nothing(distiller, data):
    x, y = data
    empty = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: b > 100).batch(8)
    with pytest.raises(ValueError, match="`x` yields no batches"):
        _fit(distiller, empty)
    with pytest.raises(ValueError, match="`x` yields no batches"):
        distiller.evaluate(empty, verbose=0)
    with pytest.raises(ValueError, match="`validation_data` yields no batches"):
        _fit(distiller, x, y, validation_data=empty)


def test_bad_validation_labels(distiller, data):
    x, y = data
    with pytest.raises(ValueError, match="`validation_data`'s labels `y` holds class indices outside"):
        _fit(distiller, x, y, validation_data=(x, y + NUM_CLASSES))


def test_evaluate_checks_labels(distiller, data):
    x, y = data
    with pytest.raises(ValueError, match="class indices outside"):
        distiller.evaluate(x, y + 10, verbose=0)


def test_good_dataset_trains_and_keeps_its_batches(distiller, data):
    x, y = data
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = _fit(distiller, dataset, check_numerics=True)
    assert np.isfinite(history.history["loss"]).all()


def test_multi_class_student_keeps_one_output_models_alone(data):
    # A one-output (binary) student: labels 0/1 are not checked as class indices of one class.
    x, y = data
    teacher, student = make_mlp(8, classes=1), make_mlp(4, classes=1)
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", student_loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    labels = (y > 0).astype("float32")
    logits = np.asarray(student(x), "float64")[:, 0]
    want = np.mean(np.logaddexp(0.0, logits) - labels * logits)  # BCE from logits, by hand
    got = distiller.evaluate(x, labels, batch_size=len(x), verbose=0, return_dict=True)
    assert got["student_loss"] == pytest.approx(want, rel=1e-5)
    before = weights_of(student)
    _fit(distiller, x, labels)
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights_of(student)))


def test_py_dataset_first_batch_is_checked(distiller, data):
    x, y = data
    base = getattr(keras.utils, "PyDataset", None) or keras.utils.Sequence

    class Batches(base):
        def __len__(self):
            return len(x) // 16

        def __getitem__(self, index):
            rows = slice(16 * index, 16 * (index + 1))
            return x[rows], y[rows] + NUM_CLASSES  # every label out of range

    with pytest.raises(ValueError, match="class indices outside"):
        distiller.fit(Batches(), epochs=1, verbose=0)


def test_a_generators_first_batch_is_checked_and_still_trained_on(distiller, data):
    x, y = data
    seen = []

    def batches(bad):
        for start in range(0, len(x), 16):
            seen.append(start)
            yield x[start : start + 16], y[start : start + 16] + (NUM_CLASSES if bad else 0)

    with pytest.raises(ValueError, match="class indices outside"):
        distiller.fit(batches(bad=True), epochs=1, verbose=0)
    assert seen == [0]  # refused on its first batch, before any step

    def empty():
        yield from ()

    with pytest.raises(ValueError, match="yields no batches"):
        distiller.fit(empty(), epochs=1, verbose=0)
    seen.clear()
    history = distiller.fit(batches(bad=False), epochs=1, verbose=0).history
    assert seen == list(range(0, len(x), 16)) and np.isfinite(history["loss"][0])


def test_a_validation_generator_is_checked_like_the_training_data(distiller, data):
    """A generator given as `validation_data` is refused on a bad first batch before any step, and a
    good one is still read whole."""
    x, y = data
    before = weights_of(distiller.student)

    def batches(bad):
        for start in range(0, len(x), 16):
            labels = y[start : start + 16] + (NUM_CLASSES if bad else 0)
            yield x[start : start + 16], labels

    with pytest.raises(ValueError, match="validation_data`'s labels `y` holds class indices outside"):
        distiller.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_data=batches(bad=True))
    for old, new in zip(before, weights_of(distiller.student)):
        np.testing.assert_array_equal(old, new)
    history = distiller.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_data=batches(bad=False)).history
    assert np.isfinite(history["val_loss"][0])


def test_unlabelled_rows_are_said_once_when_fit_starts(distiller, data, capsys):
    x, y = data
    x_all, y_all = keras_kd.transfer_set((x[:20], y[:20]), x[20:])
    distiller.fit(x_all, y_all, epochs=2, batch_size=16, verbose=2)
    said = [line for line in capsys.readouterr().out.splitlines() if "MISSING_LABEL" in line]
    assert said == [
        f"keras-kd: {len(x) - 20} of {len(x)} rows of `y` are -1 (keras_kd.MISSING_LABEL): they train on the "
        "teacher's soft targets alone, with no label loss."
    ]
    distiller.fit(x_all, y_all, epochs=1, batch_size=16, verbose=0)
    assert "MISSING_LABEL" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "y, missing",
    [
        (np.array([3, -1, 2, -1, -1]), 3),
        (np.array([-1]), 1),  # a batch of one
        (np.array([[0], [-1], [-1]]), 2),  # a column of class indices
        (np.array([1.0, -1.0, 0.0]), 1),  # float class indices
        (np.array([[-1, 4, 2], [3, -1, -1]]), 0),  # token labels: -1 marks tokens, not rows
        (np.array([[0.0, 1.0], [1.0, 0.0]]), 0),  # one-hot rows
        (np.array([], dtype="int64"), 0),
        (np.array(-1), 0),  # a scalar is no rows
        (None, 0),  # no labels at all
        ([-1, -1], 0),  # a list: Keras converts it, no count is said
    ],
)
def test_the_unlabelled_count_is_said_for_rows_of_class_indices_only(y, missing, capsys):
    from keras_kd.data.checks import _say_unlabelled

    _say_unlabelled(y)
    said = capsys.readouterr().out
    if missing:
        assert said.startswith(f"keras-kd: {missing:,} of {len(y):,} rows of `y` are -1 (keras_kd.MISSING_LABEL)")
    else:
        assert said == ""


def test_a_generators_first_batch_has_its_sample_weights_checked_and_read_whole_with_check_numerics(distiller, data):
    x, y = data

    def one_batch(rows, labels, weights):
        yield rows, labels, weights

    weights = np.ones(len(x), "float32")
    weights[3] = np.nan
    with pytest.raises(ValueError, match=r"`sample_weight` holds a non-finite sample weight \(nan\) at index \(3,\)"):
        distiller.fit(one_batch(x, y, weights), epochs=1, verbose=0)
    # A first batch longer than the rows peeked at by default is read whole with check_numerics.
    rows, labels = np.tile(x, (12, 1)), np.tile(y, 12)
    rows[PEEK_ROWS + 20, 0] = np.nan
    with pytest.raises(ValueError, match=rf"non-finite input value \(nan\) at index \({PEEK_ROWS + 20}, 0\)"):
        distiller.fit(one_batch(rows, labels, np.ones(len(rows), "float32")), epochs=1, verbose=0, check_numerics=True)
