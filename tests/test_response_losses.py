"""What every response loss shares: sequences, Keras's `call`, several teachers, sums of losses."""

import numpy as np
import pytest
from scipy.special import softmax

from keras_kd import losses
from keras_kd.backend import ops

RNG = np.random.default_rng(5)
REQUIRED = {"SoftTargetLoss": {"loss": "mse"}, "WeightedLosses": {"losses": ["kd", "dkd"]}}
RESPONSE = sorted(
    name
    for name, cls in losses._CLASSES.items()
    if not issubclass(cls, losses.FeatureLoss) and name not in ("KerasCustomLoss", "CTKDLoss")
)


def logits(*shape, scale=2.0):
    return RNG.normal(scale=scale, size=shape).astype("float32")


@pytest.mark.parametrize("name", RESPONSE)
def test_sequence_logits_are_rows_of_classes(name):
    """Logits of shape (batch, tokens, classes) without padding: the loss of the batch is the loss
    of its batch * tokens rows (the classes are the last axis, every token weighs the same)."""
    cls = losses._CLASSES[name]
    loss = cls(**REQUIRED.get(name, {}))
    t, s = logits(3, 4, 5), logits(3, 4, 5)
    labels = RNG.integers(0, 5, size=(3, 4))
    got = float(loss(t, s, labels=labels, temperature=2.0))
    want = float(loss(t.reshape(12, 5), s.reshape(12, 5), labels=labels.reshape(12), temperature=2.0))
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", [n for n in RESPONSE if losses._CLASSES[n].per_sample])
def test_keras_call_gives_one_value_a_sample_at_the_losss_own_temperature(name):
    """Keras's protocol, `loss.call(y_true, y_pred)`: unreduced, the teacher first."""
    cls = losses._CLASSES[name]
    kwargs = REQUIRED.get(name, {})
    t, s, labels = logits(4, 5), logits(4, 5), np.arange(4) % 5
    if cls.needs_labels:
        return  # the labels do not pass through Keras's two-argument call
    loss = cls(**kwargs, temperature=3.0) if "temperature" in cls.__init__.__code__.co_varnames else cls(**kwargs)
    got = np.asarray(loss.call(t, s))
    want = np.asarray(cls(**{**loss.get_config(), "reduction": "none"})(t, s, labels=labels))
    assert got.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_several_teachers_mix_their_softened_distributions():
    """softmax(mixture / T) is the weighted mean of the teachers' softmax(t_i / T)."""
    teachers, weights, temperature = [logits(4, 6), logits(4, 6, scale=4.0)], [0.25, 0.75], 3.0
    mixture = np.asarray(losses.mixture_logits([ops.convert_to_tensor(t) for t in teachers], weights, temperature))
    want = sum(w * softmax(t / temperature, axis=-1) for t, w in zip(teachers, weights))
    np.testing.assert_allclose(softmax(mixture / temperature, axis=-1), want, rtol=1e-5, atol=1e-7)


def test_weighted_losses_sum_their_terms_with_the_labels_weights_and_temperature():
    """`keras.distillation`'s several logits terms: sum_i w_i loss_i, each given the sample weights,
    the labels and the Distiller's temperature."""
    t, s, labels, weights = logits(6, 5), logits(6, 5), np.arange(6) % 5, np.linspace(0.0, 2.0, 6).astype("float32")
    terms = [losses.KDLoss(), losses.DKDLoss()]
    both = losses.WeightedLosses(terms, weights=[0.3, 2.0])
    assert both.needs_labels and not losses.WeightedLosses([losses.KDLoss()]).needs_labels
    each = [float(term(t, s, sample_weight=weights, labels=labels, temperature=3.0)) for term in terms]
    want = 0.3 * each[0] + 2.0 * each[1]
    assert float(both(t, s, sample_weight=weights, labels=labels, temperature=3.0)) == pytest.approx(want, rel=1e-5)
    unweighted = losses.WeightedLosses(terms)
    want = sum(float(term(t, s, labels=labels, temperature=3.0)) for term in terms)
    assert float(unweighted(t, s, labels=labels, temperature=3.0)) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="2 losses but 1 weights"):
        losses.WeightedLosses(terms, weights=[1.0])


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_soft_target_loss_scales_by_t_squared(temperature):
    t, s = logits(5, 4), logits(5, 4)
    p_t, p_s = softmax(t / temperature, axis=-1), softmax(s / temperature, axis=-1)
    want = temperature**2 * np.mean(np.abs(p_t - p_s), axis=-1)
    got = np.asarray(losses.SoftTargetLoss("mae", reduction="none")(t, s, temperature=temperature))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("reversal", [0.0, -0.4, -1.0])
def test_ctkd_temperature_is_the_same_forward_whatever_the_reversal(reversal):
    """T = t_start + t_range * sigmoid(p): the reversal only scales the gradient (the training run
    of tests/test_method_losses.py checks its direction)."""
    layer = losses.CTKDLoss(t_start=2.0, t_range=10.0).temperature_layer
    assert (layer.get_config()["t_start"], layer.get_config()["t_range"]) == (2.0, 10.0)
    layer.reversal.assign(reversal)
    layer.parameter.assign(0.3)
    want = 2.0 + 10.0 / (1.0 + np.exp(-0.3))
    assert float(layer.temperature()) == pytest.approx(want, rel=1e-6)
    assert layer.value() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("how", ["sample_weight", "keras_mask"])
def test_dist_on_padded_sequences_is_dist_on_the_real_positions(how):
    """DIST relates rows to each other: for sequences every real position is a row and padding
    (zero sample weights, or the Keras mask the student's logits carry) is left out."""
    from keras_kd.backend import set_keras_mask

    t, s = logits(3, 4, 5), logits(3, 4, 5)
    real = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], "float32")
    loss = losses.DISTLoss(beta=1.0, gamma=2.0)
    want = float(loss(t[real > 0], s[real > 0], temperature=2.0))
    if how == "sample_weight":
        got = loss(t, s, sample_weight=real, temperature=2.0)
    else:
        student = ops.convert_to_tensor(s)
        set_keras_mask(student, ops.convert_to_tensor(real > 0))
        got = loss(t, student, temperature=2.0)
    assert float(got) == pytest.approx(want, rel=1e-4)


def test_ctkd_takes_a_positive_start_and_any_non_negative_range():
    for t_start, t_range in ((0.0, 20.0), (-1.0, 20.0), (1.0, -0.5)):
        with pytest.raises(ValueError, match="t_start > 0 and t_range >= 0"):
            losses.CTKDLoss(t_start=t_start, t_range=t_range)
    fixed = losses.CTKDLoss(t_start=4.0, t_range=0.0)  # a range of 0: a fixed temperature
    assert fixed.temperature_layer.value() == pytest.approx(4.0)
    assert losses.CTKDLoss(t_start=0.5, t_range=0.5).temperature_layer.value() == pytest.approx(
        0.5 + 0.5 / (1.0 + np.exp(-1.0))
    )
    named = losses.CTKDLoss(name="my_ctkd")
    assert named.temperature_layer.name == "my_ctkd_temperature"
