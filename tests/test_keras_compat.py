"""Code written for Keras's own `keras.distillation` runs on keras-kd's Distiller with one import changed.

Each test writes what a Keras user writes (Keras's constructor, loss objects, `compile(loss=...)`)
and checks what they rely on against values computed here: the total loss of Keras's formula,
Hinton's loss for Keras's default, Keras's own Distiller's loss for a `KLDivergence()` instance,
the logs Keras's users read, and a saved Distiller that loads with the same outputs and settings.
tf_keras has no `keras.distillation`: there only the Keras-style arguments with keras-kd's losses apply.
"""

import json

import numpy as np
import pytest

from keras_kd import Distiller
from keras_kd.backend import IS_TF_KERAS, keras
from keras_kd.keras_compat import KerasDifferenceWarning
from keras_kd.losses import KDLoss
from tests import reference
from tests.conftest import NUM_CLASSES, NUM_FEATURES, weights_of

needs_keras_distillation = pytest.mark.skipif(
    not hasattr(keras, "distillation"), reason="keras.distillation is Keras 3.12+ only (not in tf_keras)"
)


@pytest.fixture(autouse=True)
def _differences_unsaid():
    """Each difference is said once a process: each test starts as a new process would."""
    from keras_kd import keras_compat

    keras_compat._SAID.clear()


def named_mlp(hidden, name):
    """A functional model as Keras's distillation docs build them, with layers named `dense_1`, `dense_2`."""
    inputs = keras.Input((NUM_FEATURES,))
    features = keras.layers.Dense(hidden, activation="relu", name="dense_1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name="dense_2")(features), name=name)


@pytest.fixture
def models(data):
    x, y = data
    teacher = named_mlp(16, "teacher")
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=5, verbose=0)
    return teacher, named_mlp(16, "student")


def _softmax(z):
    z = np.asarray(z, dtype="float64")
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _features(model, x):
    return np.asarray(keras.Model(model.inputs[0], model.get_layer("dense_1").output)(x), dtype="float64")


@needs_keras_distillation
def test_keras_training_script_runs_with_the_import_changed(data, models, tmp_path):
    """Keras's docstring example with feature distillation, two weighted losses, validation data,
    evaluate, predict, save and load; the loss is Keras's formula computed here."""
    from keras.distillation import FeatureDistillation, LogitsDistillation

    x, y = data
    teacher, student = models
    teacher_before, student_before = weights_of(teacher), weights_of(student)
    with pytest.warns(KerasDifferenceWarning, match="no softmax, no T\\^2"):
        distiller = Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=[
                LogitsDistillation(temperature=3.0),
                FeatureDistillation(teacher_layer_name="dense_1", student_layer_name="dense_1"),
            ],
            distillation_loss_weights=[1.0, 0.5],
            student_loss_weight=0.3,
        )
    assert not teacher.trainable
    assert distiller.student is student and distiller.teacher is teacher
    assert distiller.distillation_loss_weights == [1.0, 0.5] and distiller.student_loss_weight == 0.3
    with pytest.warns(KerasDifferenceWarning, match="from_logits=True"):
        distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    # Keras's formula, by hand: w * CE(labels, s) + (1 - w) * (1.0 * Hinton(T=3) + 0.5 * MSE(features)).
    t_logits, s_logits = np.asarray(teacher(x, training=False)), np.asarray(student(x))
    distillation = reference.hinton_kd(t_logits, s_logits, 3.0).mean()
    distillation += 0.5 * np.mean((_features(teacher, x) - _features(student, x)) ** 2)
    expected = 0.3 * reference.crossentropy(y, s_logits).mean() + 0.7 * distillation
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert logs["total_loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["distillation_loss"] == pytest.approx(distillation, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    listed = distiller.evaluate(x, y, batch_size=len(x), verbose=0)
    assert isinstance(listed, list) and listed[0] == pytest.approx(expected, rel=1e-5)

    history = distiller.fit(x, y, epochs=2, batch_size=32, validation_data=(x, y), verbose=0).history
    for key in ("total_loss", "student_loss", "distillation_loss", "val_total_loss", "val_distillation_loss"):
        assert len(history[key]) == 2, key
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(teacher), teacher_before)), "the teacher trained"
    assert not all(np.array_equal(a, b) for a, b in zip(weights_of(student), student_before)), "the student did not"
    np.testing.assert_allclose(distiller.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-6)

    config = distiller.get_config()
    json.dumps(config)  # JSON-serialisable, with Keras's keys
    for key in ("teacher", "student", "distillation_losses", "distillation_loss_weights", "student_loss_weight"):
        assert key in config, key
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.models.load_model(tmp_path / "distiller.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6)
    assert loaded.distillation_loss_weights == [1.0, 0.5] and loaded.student_loss_weight == 0.3
    assert loaded.temperature == 3.0
    reloaded = loaded.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    after = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert reloaded["total_loss"] == pytest.approx(after["total_loss"], rel=1e-5)
    rebuilt = Distiller.from_config(json.loads(json.dumps(config)))
    assert [type(loss).__name__ for loss in rebuilt.distillation_losses] == [
        "LogitsDistillation",
        "FeatureDistillation",
    ]


@needs_keras_distillation
def test_keras_default_logits_loss_is_hintons_loss_where_keras_takes_kl_of_raw_logits():
    """The issue's figures: logits [[1,2,3],[4,5,6]] against [[2,1,4],[3,6,2]] at T=3."""
    from keras.distillation import LogitsDistillation

    from keras_kd import keras_compat

    teacher = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "float32")
    student = np.array([[2.0, 1.0, 4.0], [3.0, 6.0, 2.0]], "float32")
    keras_value = float(LogitsDistillation(temperature=3.0).compute_loss(teacher, student))
    assert keras_value == pytest.approx(0.318, abs=1e-3)  # what the warning says Keras computes

    for loss in ("kl_divergence", keras.losses.kl_divergence):
        translation = keras_compat.translate(LogitsDistillation(temperature=3.0, loss=loss))
        value = float(translation.response(teacher, student, temperature=translation.temperature))
        assert value == pytest.approx(reference.hinton_kd(teacher, student, 3.0).mean(), rel=1e-5)
        assert value == pytest.approx(1.3467, abs=1e-4)
        shifted = float(translation.response(teacher + 7.0, student, temperature=translation.temperature))
        assert shifted == pytest.approx(value, rel=1e-5)  # a KL of distributions ignores a constant shift


@needs_keras_distillation
def test_a_kl_divergence_instance_gives_keras_s_own_loss(data, models):
    """`LogitsDistillation(loss=keras.losses.KLDivergence())`: Keras computes the right loss; keras-kd's total
    equals Keras's own Distiller's within 1e-6 on the same batch."""
    from keras.distillation import Distiller as KerasDistiller
    from keras.distillation import LogitsDistillation

    x, y = data
    teacher, student = models
    arguments = {"student_loss_weight": 0.3, "distillation_loss_weights": None}
    label_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ours = Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence()),
        **arguments,
    )
    theirs = KerasDistiller(
        teacher=teacher,
        student=student,
        distillation_losses=LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence()),
        **arguments,
    )
    for distiller in (ours, theirs):
        distiller.compile(optimizer="adam", loss=label_loss)
    y_pred = student(x)
    ours_total = float(ours.compute_loss(x, y, y_pred, training=False))
    theirs_total = float(theirs.compute_loss(x, y, y_pred))
    assert ours_total == pytest.approx(theirs_total, abs=1e-6)
    hand = (
        0.3 * reference.crossentropy(y, np.asarray(y_pred)).mean()
        + 0.7 * reference.hinton_kd(np.asarray(teacher(x, training=False)), np.asarray(y_pred), 4.0).mean()
    )
    assert ours_total == pytest.approx(hand, rel=1e-5)


@needs_keras_distillation
def test_keras_positional_order_and_keras_errors(models):
    from keras.distillation import LogitsDistillation

    teacher, student = models
    distiller = Distiller(teacher, student, LogitsDistillation(temperature=2.0, loss=keras.losses.KLDivergence()))
    assert distiller.teacher is teacher and distiller.student is student
    assert distiller.student_loss_weight == 0.5 and distiller.temperature == 2.0
    with pytest.raises(ValueError, match="must match"):
        Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=[LogitsDistillation(loss=keras.losses.KLDivergence())],
            distillation_loss_weights=[1.0, 2.0],
        )
    with pytest.raises(ValueError, match="between|\\[0, 1\\]"):
        Distiller(teacher=teacher, student=student, distillation_losses=KDLoss(), student_loss_weight=1.5)
    with pytest.raises(ValueError, match="cannot be None"):
        Distiller(teacher=teacher, student=student, distillation_losses=None, student_loss_weight=0.5)


def test_keras_style_arguments_with_keras_kd_losses_on_every_engine(data, models):
    """tf_keras included: Keras's constructor with keras-kd's losses; the total is Keras's formula."""
    x, y = data
    teacher, student = models
    distiller = Distiller(
        student=student,
        teacher=teacher,
        distillation_losses=[KDLoss(temperature=2.0), "logits_mse"],
        distillation_loss_weights=[1.0, 0.25],
        student_loss_weight=0.2,
    )
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    t_logits, s_logits = np.asarray(teacher(x, training=False)), np.asarray(student(x))
    distillation = reference.hinton_kd(t_logits, s_logits, 2.0).mean() + 0.25 * np.mean((s_logits - t_logits) ** 2)
    expected = 0.2 * reference.crossentropy(y, s_logits).mean() + 0.8 * distillation
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert logs["total_loss"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="Keras model"):
        Distiller(teacher="teacher.keras", student=student, distillation_losses=KDLoss())
    with pytest.raises(ValueError, match="once"):
        distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy", student_loss_fn="mse")


class SubclassedNet(keras.Model):
    """A subclassed model with its own `call`, as Keras users write them."""

    def __init__(self, hidden, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(hidden, activation="relu")
        self.out = keras.layers.Dense(NUM_CLASSES)

    def call(self, inputs, training=None):
        return self.out(self.hidden(inputs))


@needs_keras_distillation
def test_subclassed_teacher_and_student_distil_logits(data):
    from keras.distillation import LogitsDistillation

    x, y = data
    teacher = SubclassedNet(32)
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=10, verbose=0)
    student = SubclassedNet(8)
    student(x[:1])

    def gap():
        return reference.hinton_kd(np.asarray(teacher(x)), np.asarray(student(x)), 1.0).mean()

    before = gap()
    distiller = Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=LogitsDistillation(temperature=2.0, loss=keras.losses.KLDivergence()),
        student_loss_weight=0.0,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    distiller.fit(x, y, epochs=20, batch_size=32, verbose=0)
    assert gap() < 0.5 * before, (before, gap())


def test_agreement_with_the_teacher_as_metrics(data, teacher, student):
    """`compile(metrics=["teacher_agreement", "teacher_kl"])`: the values computed here from both models."""
    x, y = data
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", metrics=["accuracy", "teacher_agreement", "teacher_kl"])
    distiller.fit(x, y, epochs=1, verbose=0)
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    t_logits, s_logits = np.asarray(teacher(x, training=False)), np.asarray(student(x))
    agreement = np.mean(np.argmax(t_logits, -1) == np.argmax(s_logits, -1))
    p, q = _softmax(t_logits), _softmax(s_logits)
    kl = np.mean(np.sum(p * (np.log(p) - np.log(q)), -1))
    assert logs["teacher_agreement"] == pytest.approx(agreement, abs=1e-6)
    assert logs["teacher_kl"] == pytest.approx(kl, rel=1e-4)
    assert logs["accuracy"] == pytest.approx(np.mean(np.argmax(s_logits, -1) == y), abs=1e-6)


def test_a_keras_kd_distiller_config_has_keras_keys_and_rebuilds_alone(data, teacher, student):
    from keras_kd import FeatureDistillation

    x, _ = data
    term = FeatureDistillation("fitnets", teacher_layer=teacher.layers[0].name, student_layer=student.layers[0].name)
    distiller = Distiller(student=student, teacher=teacher, features=[term])
    distiller.compile(optimizer="adam", alpha=0.25, temperature=2.0)
    config = json.loads(json.dumps(distiller.get_config()))
    assert config["student_loss_weight"] == 0.25
    assert len(config["distillation_losses"]) == 2 and config["distillation_loss_weights"] == [1.0, 1.0]
    rebuilt = Distiller.from_config(config)
    assert [t.teacher_layer for t in rebuilt.features] == [term.teacher_layer]  # once, not again from Keras's keys
    assert rebuilt.predict(x, verbose=0).shape == distiller.predict(x, verbose=0).shape


@pytest.mark.skipif(IS_TF_KERAS, reason="tf_keras: keras-kd's own arguments only")
def test_one_difference_is_said_once():
    import warnings

    from keras_kd import keras_compat

    keras_compat._SAID.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            keras_compat.say_label_loss_difference("sparse_categorical_crossentropy")
    assert len([w for w in caught if issubclass(w.category, KerasDifferenceWarning)]) == 1
