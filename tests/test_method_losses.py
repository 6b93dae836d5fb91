"""Every loss of the research anchors against NumPy written from the paper, edge cases included."""

import numpy as np
import pytest

from keras_kd import losses
from keras_kd.backend import keras
from tests import reference
from tests.gradients import gradient

RNG = np.random.default_rng(7)


def logits(batch, classes, scale=3.0):
    return RNG.normal(scale=scale, size=(batch, classes)).astype("float32")


CASES = [(6, 5, 3.0), (1, 4, 3.0), (8, 2, 3.0), (5, 10, 12.0)]  # (batch, classes, logit scale)
TEMPERATURES = [0.5, 1.0, 4.0, 12.0]


@pytest.mark.parametrize("batch, classes, scale", CASES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_dkd(batch, classes, scale, temperature):
    t, s = logits(batch, classes, scale), logits(batch, classes, scale)
    y = RNG.integers(0, classes, batch)
    loss = losses.DKDLoss(target_weight=1.0, non_target_weight=8.0, temperature=temperature, reduction="none")
    got = np.asarray(loss(t, s, labels=y))
    np.testing.assert_allclose(got, reference.dkd(t, s, y, 1.0, 8.0, temperature), rtol=2e-4, atol=1e-5)
    one_hot = np.asarray(loss(t, s, labels=np.eye(classes)[y]))
    np.testing.assert_allclose(one_hot, got, rtol=1e-6)


def test_dkd_with_huge_logits_is_finite():
    t = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], "float32")
    s = np.array([[-1e4, 1e4, 0.0], [1e4, 0.0, -1e4]], "float32")
    for temperature in (0.05, 1.0, 100.0):
        value = losses.dkd_loss(t, s, np.array([0, 1]), temperature=temperature)
        assert np.all(np.isfinite(np.asarray(value)))


def test_dkd_needs_labels():
    with pytest.raises(ValueError, match="needs the labels"):
        losses.DKDLoss()(logits(2, 3), logits(2, 3))


@pytest.mark.parametrize("batch, classes, scale", [c for c in CASES if c[0] > 2])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_dist(batch, classes, scale, temperature):
    t, s = logits(batch, classes, scale), logits(batch, classes, scale)
    if scale / temperature > 10:
        # Softmax columns then hold values near 1e-20: Pearson's r of near-constant vectors
        # is ill-conditioned, so float32 and float64 need not agree; require a finite value.
        assert np.isfinite(float(losses.DISTLoss(temperature=temperature)(t, s)))
        return
    got = float(losses.DISTLoss(beta=1.0, gamma=2.0, temperature=temperature)(t, s))
    assert got == pytest.approx(reference.dist(t, s, 1.0, 2.0, temperature), rel=2e-4, abs=1e-5)


def test_dist_matches_its_authors_on_a_batch_of_one_and_on_saturated_logits():
    """A batch of one has constant columns, and logits of scale 50 saturate the softmax: the authors'
    Pearson (eps in the denominator only) gives those columns 0, not 1; the gradient stays finite."""
    from tests.gradients import gradient

    one_t, one_s = logits(1, 5), logits(1, 5)
    got = float(losses.DISTLoss(beta=1.0, gamma=1.0, temperature=4.0)(one_t, one_s))
    assert got == pytest.approx(reference.dist(one_t, one_s, 1.0, 1.0, 4.0), rel=1e-4)
    assert got >= 16.0 * 1.0 - 1e-4  # T^2 gamma (1 - 0): the intra-class term of a single row is 1
    rng = np.random.default_rng(3)
    t, s = (50 * rng.normal(size=(4, 10))).astype("float32"), (50 * rng.normal(size=(4, 10))).astype("float32")
    got = float(losses.DISTLoss(temperature=1.0)(t, s))
    assert got == pytest.approx(reference.dist(t, s, 1.0, 1.0, 1.0), rel=1e-3)
    for teacher, student in ((one_t, one_s), (t, s)):
        grad = gradient(lambda z, teacher=teacher: losses.DISTLoss(temperature=1.0)(teacher, z), student)
        assert np.all(np.isfinite(grad))


def test_dist_refuses_sample_weights():
    with pytest.raises(ValueError, match="cannot weigh them"):
        losses.DISTLoss()(logits(3, 5), logits(3, 5), sample_weight=np.ones(3))


@pytest.mark.parametrize("batch, classes, scale", CASES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_soft_target_crossentropy_and_logits_mse(batch, classes, scale, temperature):
    t, s = logits(batch, classes, scale), logits(batch, classes, scale)
    got = np.asarray(losses.SoftTargetCrossentropy(temperature=temperature, reduction="none")(t, s))
    np.testing.assert_allclose(got, reference.soft_crossentropy(t, s, temperature), rtol=1e-4, atol=1e-5)
    mse = float(losses.LogitsMSE()(t, s))
    assert mse == pytest.approx(np.mean((s.astype(np.float64) - t) ** 2), rel=1e-5)


@pytest.mark.parametrize("batch", [1, 4])
def test_fitnets(batch):
    t, s = RNG.normal(size=(batch, 4, 4, 6)), RNG.normal(size=(batch, 4, 4, 6))
    got = np.asarray(losses.FitNetsLoss(reduction="none")(t, s))
    np.testing.assert_allclose(got, reference.fitnets(t, s), rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("p", [1.0, 2.0])
def test_attention_transfer_with_different_channel_counts(batch, p):
    t, s = RNG.normal(size=(batch, 5, 5, 8)), RNG.normal(size=(batch, 5, 5, 3))
    got = np.asarray(losses.AttentionTransferLoss(p=p, reduction="none")(t, s))
    np.testing.assert_allclose(got, reference.attention_transfer(t, s, p), rtol=1e-4, atol=1e-9)


def test_attention_transfer_refuses_different_spatial_sizes():
    with pytest.raises(ValueError, match="spatial"):
        losses.AttentionTransferLoss()(RNG.normal(size=(2, 4, 4, 3)), RNG.normal(size=(2, 5, 5, 3)))


@pytest.mark.parametrize("batch", [2, 5])
@pytest.mark.parametrize("weights", [(25.0, 50.0), (1.0, 0.0), (0.0, 1.0)])
def test_rkd(batch, weights):
    t, s = RNG.normal(size=(batch, 7)), RNG.normal(size=(batch, 3))
    got = float(losses.RKDLoss(*weights)(t, s))
    assert got == pytest.approx(reference.rkd(t, s, *weights), rel=1e-4, abs=1e-6)


def test_rkd_batch_of_one_is_zero():
    assert float(losses.RKDLoss()(RNG.normal(size=(1, 4)), RNG.normal(size=(1, 4)))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("batch", [1, 6])
def test_pkt(batch):
    t, s = RNG.normal(size=(batch, 9)), RNG.normal(size=(batch, 4))
    assert float(losses.PKTLoss()(t, s)) == pytest.approx(reference.pkt(t, s), rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("name", ["dkd", "dist", "soft_target_crossentropy", "logits_mse", "kd"])
def test_response_losses_are_zero_or_minimal_for_identical_logits_and_have_gradients(name):
    t = logits(4, 5)
    loss = losses.get(name)
    got = gradient(lambda s: loss(t, s, labels=np.array([0, 1, 2, 3]), temperature=2.0), logits(4, 5))
    assert got.shape == (4, 5) and np.all(np.isfinite(got)) and np.any(got != 0)
    if name != "soft_target_crossentropy":  # cross-entropy keeps the teacher's entropy
        # DIST: 1 - Pearson in float32 (eps 1e-8 below), times T^2, leaves a few 1e-5.
        tolerance = 1e-4 if name == "dist" else 1e-5
        assert float(loss(t, t, labels=np.array([0, 1, 2, 3]), temperature=2.0)) == pytest.approx(0.0, abs=tolerance)


@pytest.mark.parametrize(
    "spec, cls",
    [
        ({"name": "dkd", "non_target_weight": 2.0}, losses.DKDLoss),
        ({"name": "rkd", "angle_weight": 0.0}, losses.RKDLoss),
        ("at", losses.AttentionTransferLoss),
        ("pkt", losses.PKTLoss),
    ],
)
def test_registry_builds_from_names_and_specs(spec, cls):
    loss = losses.get(spec)
    assert isinstance(loss, cls)
    restored = losses.deserialize(losses.serialize(loss))
    assert type(restored) is cls and restored.get_config() == loss.get_config()


def test_registry_rejects_unknown_arguments():
    with pytest.raises(ValueError, match="It accepts: .*beta"):
        losses.get({"name": "dkd", "gamma": 1.0})


def test_dkd_takes_its_paper_weights_under_their_own_names_and_the_old_ones_with_a_warning():
    t, s, labels = logits(6, 5), logits(6, 5), np.arange(6) % 5
    with pytest.warns(DeprecationWarning, match="target_weight= and non_target_weight="):
        old = losses.DKDLoss(alpha=2.0, beta=3.0)
    new = losses.DKDLoss(target_weight=2.0, non_target_weight=3.0)
    assert (old.target_weight, old.non_target_weight) == (2.0, 3.0)
    assert "alpha" not in new.get_config() and new.get_config()["non_target_weight"] == 3.0
    assert float(old(t, s, labels=labels, temperature=2.0)) == float(new(t, s, labels=labels, temperature=2.0))


@pytest.mark.parametrize("name", losses.known_names())
def test_every_registered_loss_round_trips_through_its_config(name):
    required = {"crd": {"num_examples": 16}, "CRDLoss": {"num_examples": 16}, "SoftTargetLoss": {"loss": "mse"}}
    if name == "KerasCustomLoss":  # wraps an object with `compute_loss`, such as Keras's own loss classes
        if not hasattr(keras, "distillation"):
            pytest.skip("keras.distillation is Keras 3.12+ only")
        required[name] = {"loss": keras.distillation.LogitsDistillation(temperature=2.0, loss="mse")}
    loss = losses.get({"name": name, **required[name]} if name in required else name)
    restored = losses.deserialize(losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    if isinstance(loss, losses.FeatureLoss):
        if getattr(loss, "needs_indices", False):
            return  # CRD computes inside a Distiller, with its memory (tests/test_crd.py)
        t, s = logits(6, 12), logits(6, 12)
        assert float(restored(t, s)) == pytest.approx(float(loss(t, s)), rel=1e-6)
    else:
        t, s, labels = logits(6, 5), logits(6, 5), np.arange(6) % 5
        want = float(loss(t, s, labels=labels, temperature=3.0))
        assert float(restored(t, s, labels=labels, temperature=3.0)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("batch, classes, scale", CASES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_logit_standardization_kd(batch, classes, scale, temperature):
    """`ls_kd` and `logit_standardization=True` on KD: Sun et al.'s z-score, then Hinton's loss."""
    t, s = logits(batch, classes, scale), logits(batch, classes, scale)
    want = reference.ls_kd(t, s, temperature)
    got = np.asarray(losses.get("ls_kd")(t, s, temperature=temperature, sample_weight=None))
    assert float(got) == pytest.approx(float(want.mean()), rel=2e-4, abs=1e-5)
    option = losses.KDLoss(temperature=temperature, logit_standardization=True, reduction="none")
    np.testing.assert_allclose(np.asarray(option(t, s)), want, rtol=2e-4, atol=5e-5)
    # Only the logits' relations count: any shift and positive scale of a row change nothing.
    moved = losses.KDLoss(temperature=temperature, logit_standardization=True, reduction="none")(t * 7.0 + 3.0, s)
    np.testing.assert_allclose(np.asarray(moved), want, rtol=2e-4, atol=5e-5)  # float32 rounding of the z-scores


def test_logit_standardization_keeps_a_constant_row_finite_with_finite_gradients():
    t = np.array([[2.0, 2.0, 2.0], [1.0, 5.0, -3.0]], "float32")
    s = np.array([[0.5, 0.5, 0.5], [3.0, 3.0, 3.0]], "float32")
    loss = losses.LSKDLoss(temperature=2.0)
    assert np.isfinite(float(loss(t, s)))
    assert float(loss(t, s)) == pytest.approx(float(reference.ls_kd(t, s, 2.0).mean()), rel=1e-4)
    assert np.all(np.isfinite(gradient(lambda z: loss(t, z), s)))


@pytest.mark.parametrize("batch, classes, scale", CASES)
def test_mlkd(batch, classes, scale):
    t, s = logits(batch, classes, scale), logits(batch, classes, scale)
    got = float(losses.get("mlkd")(t, s))
    assert got == pytest.approx(reference.mlkd(t, s, (2.0, 3.0, 4.0, 5.0, 6.0)), rel=2e-4, abs=1e-5)
    custom = float(losses.MLKDLoss(temperatures=[1.0, 8.0])(t, s))
    assert custom == pytest.approx(reference.mlkd(t, s, (1.0, 8.0)), rel=2e-4, abs=1e-5)
    assert float(losses.get("mlkd")(t, t)) == pytest.approx(0.0, abs=1e-5)


def test_ctkd_reversal_follows_the_authors_cosine_curriculum():
    """0 at epoch 0, -0.5 half-way, -1 from `decay_epochs` on (their CosineDecay(0, -1, 10))."""
    import math

    want = [-(1 - (math.cos(math.pi * e / 10) + 1) / 2) for e in range(10)] + [-1.0, -1.0]
    got = [losses.reversal_strength(e, 10) for e in range(12)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[0] == 0.0 and got[5] == pytest.approx(-0.5) and got[10] == -1.0


def test_ctkd_is_hintons_loss_at_its_learned_temperature():
    t, s = logits(6, 5), logits(6, 5)
    loss = losses.get({"name": "ctkd", "t_start": 1.0, "t_range": 20.0})
    temperature = 1.0 + 20.0 / (1.0 + np.exp(-1.0))  # the parameter starts at 1
    assert loss.temperature_layer.value() == pytest.approx(temperature)
    assert float(loss(t, s, temperature=3.0)) == pytest.approx(
        reference.hinton_kd(t, s, temperature).mean(), rel=2e-4
    )  # the Distiller's own temperature is not used


def test_ctkd_trains_the_temperature_against_the_student(data, teacher, student):
    """With full reversal the optimizer that lowers the total loss moves T to raise the distillation
    loss; with none (epoch 0) T stays where it is."""
    from keras_kd import Distiller

    x, y = data
    distiller = Distiller(student=student, teacher=teacher)
    ctkd = losses.CTKDLoss(decay_epochs=1)
    distiller.compile(optimizer=keras.optimizers.SGD(1.0), distillation_loss_fn=ctkd, alpha=0.0)
    assert any(v is ctkd.temperature_layer.parameter for v in distiller.trainable_variables)
    start = ctkd.temperature_layer.value()
    history = distiller.fit(x, y, epochs=1, batch_size=len(x), verbose=0).history  # epoch 0: no reversal
    assert ctkd.temperature_layer.value() == pytest.approx(start, abs=1e-6)
    assert history["learned_temperature"][0] == pytest.approx(start, abs=1e-6)

    # From epoch 1 on the reversal is full: T takes a step up the distillation loss's slope.
    t_logits, s_logits = np.asarray(teacher(x, training=False)), np.asarray(student(x))
    probe = [reference.hinton_kd(t_logits, s_logits, start + d).mean() for d in (-0.01, 0.01)]
    uphill = np.sign(probe[1] - probe[0])
    distiller.fit(x, y, epochs=2, initial_epoch=1, batch_size=len(x), verbose=0)
    assert np.sign(ctkd.temperature_layer.value() - start) == uphill


def test_dkd_reads_sparse_labels_as_sparse_when_the_batch_equals_the_classes():
    t, s, y = logits(4, 4), logits(4, 4), np.array([2, 0, 3, 1])
    loss = losses.DKDLoss(temperature=2.0, reduction="none")
    want = reference.dkd(t, s, y, 1.0, 8.0, 2.0)
    np.testing.assert_allclose(np.asarray(loss(t, s, labels=y)), want, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(loss(t, s, labels=np.eye(4)[y])), want, rtol=2e-4, atol=1e-5)


def test_dkd_old_alpha_and_beta_still_set_the_weights_with_a_warning():
    import warnings

    with pytest.warns(DeprecationWarning, match="target_weight"):
        only_alpha = losses.DKDLoss(alpha=2.0)
    with pytest.warns(DeprecationWarning, match="non_target_weight"):
        only_beta = losses.DKDLoss(beta=3.0)
    assert (only_alpha.target_weight, only_alpha.non_target_weight) == (2.0, 8.0)
    assert (only_beta.target_weight, only_beta.non_target_weight) == (1.0, 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses.DKDLoss(target_weight=2.0, non_target_weight=3.0)


def test_rkd_defaults_are_the_authors_weights():
    """Park et al.: 25 for the distance term, 50 for the angle term."""
    t, s = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 3))
    explicit = float(losses.rkd_loss(t, s, distance_weight=25.0, angle_weight=50.0))
    assert float(losses.rkd_loss(t, s)) == pytest.approx(explicit, rel=1e-6)
    assert float(losses.RKDLoss()(t, s)) == pytest.approx(explicit, rel=1e-6)
    assert float(losses.rkd_loss(t, s, distance_weight=26.0)) != pytest.approx(explicit, rel=1e-4)
    assert float(losses.rkd_loss(t, s, angle_weight=51.0)) != pytest.approx(explicit, rel=1e-4)
