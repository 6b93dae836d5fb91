"""Bad input is refused with an error that names the argument, before any training."""

import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.backend import ENGINE, keras
from tests.conftest import make_mlp


def test_output_shapes_that_differ(teacher):
    with pytest.raises(ValueError, match="output shape"):
        keras_kd.Distiller(student=make_mlp(4, classes=5), teacher=teacher)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "a lot"])
def test_alpha_outside_unit_interval(teacher, student, alpha):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="alpha"):
        distiller.compile(optimizer="adam", alpha=alpha)


@pytest.mark.parametrize("temperature", [0.0, -2.0])
def test_temperature_not_positive(teacher, student, temperature):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="temperature"):
        distiller.compile(optimizer="adam", temperature=temperature)


@pytest.mark.parametrize("argument", ["student", "teacher"])
def test_not_a_model(teacher, student, argument):
    models = {"student": student, "teacher": teacher}
    models[argument] = lambda x: x
    with pytest.raises(TypeError, match=f"`{argument}` must be a Keras model"):
        keras_kd.Distiller(**models)


def _model_of_the_other_engine():
    if ENGINE == "keras3":
        import tf_keras as other
    else:
        import keras as other
    return other.Sequential([other.Input((8,)), other.layers.Dense(3)])


def test_model_of_the_other_engine_says_how_to_switch(teacher):
    expected = "TF_USE_LEGACY_KERAS=1" if ENGINE == "keras3" else "unset TF_USE_LEGACY_KERAS"
    with pytest.raises(TypeError, match=expected):
        keras_kd.Distiller(student=_model_of_the_other_engine(), teacher=teacher)


@pytest.mark.parametrize("final", [keras.layers.Softmax(), keras.layers.Activation("softmax")])
def test_student_ending_in_a_softmax_layer(teacher, final):
    student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3), final])
    with pytest.raises(ValueError, match="outputs probabilities"):
        keras_kd.Distiller(student=student, teacher=teacher)


def test_student_with_softmax_activation(teacher):
    with pytest.raises(ValueError, match="activation=None"):
        keras_kd.Distiller(student=make_mlp(4, final_activation="softmax"), teacher=teacher)


def test_strip_output_activation_keeps_the_weights(data):
    x, _ = data
    probabilities = make_mlp(4, final_activation="softmax")
    logits = keras_kd.utils.strip_output_activation(probabilities)
    np.testing.assert_allclose(tf.nn.softmax(logits(x)).numpy(), np.asarray(probabilities(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("empty", ["array", "dataset"])
def test_empty_data(data, teacher, student, empty):
    x, y = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam")
    inputs = x[:0] if empty == "array" else tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(4)
    before = [w.copy() for w in student.get_weights()]
    with pytest.raises(ValueError, match="`x` holds no samples"):
        distiller.fit(inputs, y[:0] if empty == "array" else None, verbose=0)
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_labels_missing_while_alpha_weighs_them(data, teacher, student):
    x, _ = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.5)
    with pytest.raises(ValueError, match="alpha=0"):
        distiller.fit(x, None, epochs=1, verbose=0)


def test_loss_is_the_label_loss_and_a_probability_loss_is_refused(teacher, student):
    """`loss` is Keras's name for the loss on labels; one that reads probabilities is refused with the fix."""
    from keras_kd.backend import keras

    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert distiller.student_loss_fn.get_config()["from_logits"] is True
    with pytest.raises(ValueError, match="from_logits=True"):
        distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())


def test_fit_before_compile(data, teacher, student):
    x, y = data
    with pytest.raises(RuntimeError, match="compile"):
        keras_kd.Distiller(student=student, teacher=teacher).fit(x, y, verbose=0)
