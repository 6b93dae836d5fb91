"""The Hinton loss and the loss registry, checked against NumPy values computed independently."""

import numpy as np
import pytest

from keras_kd import losses
from keras_kd.backend import keras
from tests import reference
from tests.gradients import gradient

RNG = np.random.default_rng(42)
TEACHER = RNG.normal(scale=3.0, size=(5, 4)).astype("float32")
STUDENT = RNG.normal(scale=3.0, size=(5, 4)).astype("float32")


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0, 10.0, 20.0])
def test_kd_loss_matches_numpy(temperature):
    got = np.asarray(losses.kd_loss(TEACHER, STUDENT, temperature))
    want = reference.hinton_kd(TEACHER, STUDENT, temperature)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 12.0])
def test_kd_loss_class_reduces_to_batch_mean(temperature):
    got = float(losses.KDLoss(temperature=temperature)(TEACHER, STUDENT))
    want = reference.hinton_kd(TEACHER, STUDENT, temperature).mean()
    assert got == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("temperature", [0.7, 2.0, 8.0])
def test_kd_gradient_matches_analytic_form(temperature):
    got = gradient(lambda student: losses.KDLoss(temperature=temperature)(TEACHER, student), STUDENT)
    want = reference.kd_gradient(TEACHER, STUDENT, temperature)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.05, 1.0, 100.0])
def test_kd_loss_is_finite_and_exact_for_huge_logits(temperature):
    teacher = np.array([[1e4, -1e4, 0.0], [-1e4, 5e3, 1e4]], "float32")
    student = np.array([[-1e4, 1e4, 0.0], [1e4, 0.0, -1e4]], "float32")
    got = np.asarray(losses.kd_loss(teacher, student, temperature))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, reference.hinton_kd(teacher, student, temperature), rtol=1e-4)


def test_identical_logits_give_zero_loss():
    assert float(losses.KDLoss(temperature=3.0)(TEACHER, TEACHER)) == pytest.approx(0.0, abs=1e-6)


def test_sample_weight_weighs_each_sample():
    weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0], "float32")
    got = float(losses.KDLoss(temperature=2.0)(TEACHER, STUDENT, sample_weight=weights))
    per_sample = reference.hinton_kd(TEACHER, STUDENT, 2.0)
    assert got == pytest.approx(np.sum(per_sample * weights) / len(weights), rel=1e-4)


@pytest.mark.parametrize(
    "identifier",
    ["kl_divergence", "kd", "KLDivergence", keras.losses.KLDivergence(), keras.losses.kl_divergence, None],
)
def test_kl_divergence_identifiers_resolve_to_the_stable_hinton_loss(identifier):
    loss = losses.get(identifier)
    assert isinstance(loss, losses.KDLoss)
    want = reference.hinton_kd(TEACHER, STUDENT, 5.0).mean()
    assert float(loss(TEACHER, STUDENT, temperature=5.0)) == pytest.approx(want, rel=1e-4)


def test_other_keras_losses_apply_to_soft_targets_times_t_squared():
    loss = losses.get("mse")
    assert isinstance(loss, losses.SoftTargetLoss)
    from scipy.special import softmax

    p_t, p_s = softmax(TEACHER / 2.0, axis=-1), softmax(STUDENT / 2.0, axis=-1)
    want = 4.0 * np.mean(np.mean((p_t - p_s) ** 2, axis=-1))
    assert float(loss(TEACHER, STUDENT, temperature=2.0)) == pytest.approx(want, rel=1e-4)


def test_own_temperature_wins_over_the_distillers():
    at_seven = float(losses.KDLoss()(TEACHER, STUDENT, temperature=7.0))
    assert float(losses.KDLoss(temperature=7.0)(TEACHER, STUDENT, temperature=2.0)) == pytest.approx(at_seven)
    assert float(losses.KDLoss()(TEACHER, STUDENT, temperature=2.0)) != pytest.approx(at_seven)
    assert float(losses.KDLoss()(TEACHER, STUDENT)) == pytest.approx(
        reference.hinton_kd(TEACHER, STUDENT, 1.0).mean(), rel=1e-4
    )


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="known distillation losses: .*kd"):
        losses.get("no_such_loss")


@pytest.mark.parametrize("temperature", [0, -1.0, "hot"])
def test_bad_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature"):
        losses.KDLoss(temperature=temperature)


@pytest.mark.parametrize("loss", [losses.KDLoss(temperature=3.0), losses.SoftTargetLoss("mse", temperature=2.0)])
def test_serialization_round_trip(loss):
    restored = losses.deserialize(losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.temperature == loss.temperature
    assert float(restored(TEACHER, STUDENT)) == pytest.approx(float(loss(TEACHER, STUDENT)), rel=1e-6)


def test_student_loss_refuses_probability_crossentropy():
    with pytest.raises(ValueError, match="from_logits=True"):
        losses.get_student_loss(keras.losses.SparseCategoricalCrossentropy())


def test_student_loss_name_means_from_logits():
    labels = np.array([0, 2, 1, 3, 0])
    loss = losses.get_student_loss("sparse_categorical_crossentropy")
    assert float(loss(labels, STUDENT)) == pytest.approx(reference.crossentropy(labels, STUDENT).mean(), rel=1e-4)


def test_logits_crossentropy_takes_sparse_and_one_hot_labels():
    labels = np.array([0, 2, 1, 3, 0])
    want = reference.crossentropy(labels, STUDENT).mean()
    loss = losses.LogitsCrossentropy()
    assert float(loss(labels, STUDENT)) == pytest.approx(want, rel=1e-4)
    assert float(loss(labels[:, None], STUDENT)) == pytest.approx(want, rel=1e-4)
    assert float(loss(np.eye(4)[labels], STUDENT)) == pytest.approx(want, rel=1e-4)
