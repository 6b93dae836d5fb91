"""Forward KL, reverse KL, generalized JSD and skew KL against NumPy written from the papers' formulas."""

import numpy as np
import pytest

from keras_kd import losses
from keras_kd.backend import keras
from tests import reference
from tests.gradients import gradient

RNG = np.random.default_rng(11)
SHAPES = [(4, 7), (3, 5, 11), (2, 3, 4, 6)]  # (batch, classes), (batch, time, vocabulary), and one more axis
TEMPERATURES = [0.5, 1.0, 2.5]


def logits(shape, scale=3.0):
    return RNG.normal(scale=scale, size=shape).astype("float32")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_forward_and_reverse_kl_match_numpy(shape, temperature):
    t, s = logits(shape), logits(shape)
    forward = losses.ForwardKLLoss(temperature=temperature, reduction="none")(t, s)
    reverse = losses.ReverseKLLoss(temperature=temperature, reduction="none")(t, s)
    assert np.shape(forward) == shape[:-1]
    np.testing.assert_allclose(np.asarray(forward), reference.hinton_kd(t, s, temperature), rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(reverse), reference.reverse_kl(t, s, temperature), rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_generalized_jsd_matches_numpy(shape, temperature, beta):
    t, s = logits(shape), logits(shape)
    got = np.asarray(losses.GeneralizedJSDLoss(beta=beta, temperature=temperature, reduction="none")(t, s))
    want = reference.generalized_jsd(t, s, beta, temperature)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)


def test_generalized_jsd_defaults_to_the_symmetric_jsd_bounded_by_log_2():
    t, s = logits((6, 9), scale=20.0), logits((6, 9), scale=20.0)
    loss = losses.GeneralizedJSDLoss(reduction="none")
    assert loss.beta == 0.5
    got = np.asarray(loss(t, s))
    assert np.all(got <= np.log(2) + 1e-6) and np.all(got >= 0)
    np.testing.assert_allclose(got, np.asarray(loss(s, t)), rtol=1e-4, atol=1e-6)  # symmetric at beta 0.5


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("skew", [0.0, 0.1, 0.5])
def test_skew_kl_and_skew_reverse_kl_match_numpy(shape, temperature, skew):
    t, s = logits(shape), logits(shape)
    got = np.asarray(losses.SkewKLLoss(skew=skew, temperature=temperature, reduction="none")(t, s))
    np.testing.assert_allclose(got, reference.skew_kl(t, s, skew, temperature), rtol=2e-4, atol=1e-5)
    got = np.asarray(losses.SkewReverseKLLoss(skew=skew, temperature=temperature, reduction="none")(t, s))
    np.testing.assert_allclose(got, reference.skew_reverse_kl(t, s, skew, temperature), rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["forward_kl", "reverse_kl", "generalized_jsd", "skew_kl", "skew_reverse_kl"])
def test_each_divergence_is_zero_for_identical_logits_and_finite_for_huge_ones(name):
    loss = losses.get(name)
    same = logits((3, 4, 6))
    assert abs(float(loss(same, same))) < 1e-5
    t = np.array([[[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]]], "float32")
    s = np.array([[[-1e4, 1e4, 0.0], [1e4, 0.0, -1e4]]], "float32")
    for temperature in (0.05, 1.0, 100.0):
        value = losses.get(name)(t, s, temperature=temperature)
        assert np.isfinite(float(value))
        grad = gradient(lambda z, temperature=temperature: losses.get(name)(t, z, temperature=temperature), s)
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_generalized_jsd_gradient_matches_finite_differences(beta):
    t, s = logits((2, 3, 5), scale=1.0), logits((2, 3, 5), scale=1.0)
    loss = losses.GeneralizedJSDLoss(beta=beta, temperature=1.5)
    grad = gradient(lambda z: loss(t, z), s)
    step, numeric = 1e-3, np.zeros(s.shape)
    for index in np.ndindex(s.shape):
        up, down = s.astype(np.float64).copy(), s.astype(np.float64).copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (
            np.mean(reference.generalized_jsd(t, up, beta, 1.5))
            - np.mean(reference.generalized_jsd(t, down, beta, 1.5))
        ) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-2, atol=1e-4)


def test_the_temperature_softens_each_token_and_the_distillers_applies_unless_fixed():
    t, s = logits((2, 3, 5)), logits((2, 3, 5))
    loss = losses.get("gkd")
    assert float(loss(t, s, temperature=2.0)) == pytest.approx(
        np.mean(reference.generalized_jsd(t, s, 0.5, 2.0)), rel=2e-4
    )
    fixed = losses.GeneralizedJSDLoss(temperature=3.0)
    assert float(fixed(t, s, temperature=2.0)) == pytest.approx(
        np.mean(reference.generalized_jsd(t, s, 0.5, 3.0)), rel=2e-4
    )


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("forward_kl", losses.ForwardKLLoss),
        ("fkl", losses.ForwardKLLoss),
        ("reverse_kl", losses.ReverseKLLoss),
        ("rkl", losses.ReverseKLLoss),
        ("generalized_jsd", losses.GeneralizedJSDLoss),
        ("gkd", losses.GeneralizedJSDLoss),
        ("jsd", losses.GeneralizedJSDLoss),
        ("skew_kl", losses.SkewKLLoss),
        ("skew_reverse_kl", losses.SkewReverseKLLoss),
    ],
)
def test_names_resolve(identifier, cls):
    assert isinstance(losses.get(identifier), cls)


@pytest.mark.parametrize(
    "loss",
    [
        losses.ForwardKLLoss(temperature=2.0),
        losses.ReverseKLLoss(),
        losses.GeneralizedJSDLoss(beta=0.3, reduction="sum"),
        losses.SkewKLLoss(skew=0.2),
        losses.SkewReverseKLLoss(skew=0.05, temperature=1.5),
    ],
)
def test_serialization_round_trip(loss):
    config = losses.serialize(loss)
    restored = losses.deserialize(config)
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.get_config() == loss.get_config()
    assert losses.from_spec({"name": type(loss).__name__, **{k: getattr(loss, k) for k in loss.hyperparameters}})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: losses.GeneralizedJSDLoss(beta=1.5), r"`beta` must lie in \[0, 1\]"),
        (lambda: losses.SkewKLLoss(skew=1.0), r"`skew` must lie in \[0, 1\)"),
        (lambda: losses.SkewReverseKLLoss(skew=-0.1), r"`skew` must lie in \[0, 1\)"),
    ],
)
def test_bad_hyperparameters_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
