"""Every registered loss keeps what it was given: each hyper-parameter, the reduction, the name and
the temperature, set to values other than their defaults, reach `get_config`, survive a round trip
and change the loss. (A round trip of the defaults passes even when `get_config` drops a key.)"""

import functools
import inspect

import numpy as np
import pytest

from keras_kd import losses
from keras_kd.backend import IS_TF_KERAS, keras, ops

RNG = np.random.default_rng(11)
T, S = RNG.normal(scale=2.0, size=(6, 5)).astype("float32"), RNG.normal(scale=2.0, size=(6, 5)).astype("float32")
LABELS = np.arange(6) % 5
# Feature maps (batch, height, width, channels): attention transfer needs the spatial axes.
FT, FS = RNG.normal(size=(6, 4, 4, 3)).astype("float32"), RNG.normal(size=(6, 4, 4, 3)).astype("float32")
# Arguments a class cannot go without.
REQUIRED = {
    "CRDLoss": {"num_examples": 16},
    "SoftTargetLoss": {"loss": "mse"},
    "WeightedLosses": {"losses": ["kd", "dkd"]},
}


def _other(value):
    """A value of the same kind that is not the default."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value * 1.5 + 0.25
    if isinstance(value, tuple):
        return tuple(_other(v) for v in value)[:2]
    if value is None:
        return 5
    raise TypeError(value)


def _non_defaults(cls):
    signature = inspect.signature(cls.__init__).parameters
    required = REQUIRED.get(cls.__name__, {})
    values = {name: _other(signature[name].default) for name in cls.hyperparameters if name not in required}
    if "temperature" in signature:
        values["temperature"] = 3.0
    return values


def _value(loss):
    if isinstance(loss, losses.FeatureLoss):
        return float(loss(FT, FS))
    return float(loss(T, S, labels=LABELS, temperature=1.5))


def _classes():
    names = sorted(losses._CLASSES)
    return [name for name in names if name != "KerasCustomLoss"]


@pytest.mark.parametrize("name", _classes())
def test_every_setting_reaches_the_config_and_survives_a_round_trip(name):
    cls = losses._CLASSES[name]
    settings = {**REQUIRED.get(name, {}), **_non_defaults(cls), "reduction": "sum", "name": f"my_{name}"}
    loss = cls(**settings)
    config = loss.get_config()
    for key, value in settings.items():
        if key not in ("losses", "loss"):
            assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    restored = losses.deserialize(losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config
    assert restored.name == f"my_{name}"
    if getattr(loss, "needs_indices", False):
        return  # CRD computes inside a Distiller, with its memory (tests/test_crd.py)
    assert _value(restored) == pytest.approx(_value(loss), rel=1e-6)


@pytest.mark.parametrize("name", [n for n in _classes() if losses._CLASSES[n].hyperparameters and n != "CRDLoss"])
def test_each_hyperparameter_changes_the_loss(name):
    cls = losses._CLASSES[name]
    default = _value(cls(**REQUIRED.get(name, {})))
    for key, value in _non_defaults(cls).items():
        if key == "temperature" or (name == "CTKDLoss" and key == "decay_epochs"):
            continue  # CTKD's decay is per epoch: tests/test_method_losses.py trains through it
        changed = _value(cls(**REQUIRED.get(name, {}), **{key: value}))
        assert changed != pytest.approx(default, rel=1e-4), key


@pytest.mark.parametrize("name", _classes())
def test_sum_is_the_batch_times_the_mean_and_none_keeps_one_value_a_sample(name):
    cls = losses._CLASSES[name]
    if name == "CRDLoss" or not cls.per_sample:
        pytest.skip("one value a batch (the samples relate to each other)")
    mean = _value(cls(**REQUIRED.get(name, {})))
    assert _value(cls(**REQUIRED.get(name, {}), reduction="sum")) == pytest.approx(6 * mean, rel=1e-5)
    loss = cls(**REQUIRED.get(name, {}), reduction="none")
    is_feature = isinstance(loss, losses.FeatureLoss)
    values = np.asarray(loss(FT, FS) if is_feature else loss(T, S, labels=LABELS, temperature=1.5))
    assert values.shape == (6,) and float(values.mean()) == pytest.approx(mean, rel=1e-5)


def test_keras_losses_are_named_after_the_loss_they_wrap():
    def my_distance(t, s):
        return ops.mean(ops.abs(t - s), axis=-1)

    assert losses.KerasLogitsLoss("mse").name == "logits_mean_squared_error"
    assert losses.KerasLogitsLoss(keras.losses.Huber()).name == "logits_huber_loss"
    assert losses.KerasLogitsLoss(my_distance).name == "logits_my_distance"
    assert losses.KerasLogitsLoss(my_distance, name="mine").name == "mine"
    assert losses.KerasFeatureLoss("mae").name == "feature_mean_absolute_error"
    assert losses.KerasFeatureLoss(my_distance).name == "feature_my_distance"


@pytest.mark.skipif(IS_TF_KERAS or not hasattr(keras, "distillation"), reason="keras.distillation: Keras 3.12+")
def test_a_users_keras_distillation_loss_keeps_its_name_and_reduction():
    wrapped = keras.distillation.LogitsDistillation(temperature=2.0, loss="mse")
    loss = losses.KerasCustomLoss(wrapped, reduction="sum")
    assert loss.name == "LogitsDistillation" and loss.get_config()["reduction"] == "sum"
    restored = losses.deserialize(losses.serialize(loss))
    assert restored.get_config()["reduction"] == "sum"
    assert float(restored(T, S)) == pytest.approx(float(wrapped.compute_loss(T, S)), rel=1e-6)


# The names a loss takes when none is given: what Keras logs and a saved config holds.
DEFAULT_NAMES = {
    "AttentionTransferLoss": "attention_transfer_loss",
    "CRDLoss": "crd_loss",
    "CTKDLoss": "ctkd_loss",
    "DISTLoss": "dist_loss",
    "DKDLoss": "dkd_loss",
    "FitNetsLoss": "fitnets_loss",
    "ForwardKLLoss": "forward_kl",
    "GeneralizedJSDLoss": "generalized_jsd",
    "KDLoss": "kd_loss",
    "KerasFeatureLoss": "feature_mean_squared_error",
    "KerasLogitsLoss": "logits_mean_squared_error",
    "LSKDLoss": "ls_kd_loss",
    "LogitsMSE": "logits_mse",
    "MLKDLoss": "mlkd_loss",
    "PKTLoss": "pkt_loss",
    "RKDLoss": "rkd_loss",
    "ReverseKLLoss": "reverse_kl",
    "SkewKLLoss": "skew_kl",
    "SkewReverseKLLoss": "skew_reverse_kl",
    "SoftTargetCrossentropy": "soft_target_crossentropy",
    "SoftTargetLoss": "soft_target_mean_squared_error",
    "ULDLoss": "uld",
    "WeightedLosses": "weighted_losses",
}


def test_every_loss_has_its_default_name():
    assert set(DEFAULT_NAMES) == set(_classes())
    for name, want in DEFAULT_NAMES.items():
        assert losses._CLASSES[name](**REQUIRED.get(name, {})).name == want


@pytest.mark.parametrize(
    "name", [n for n in _classes() if not issubclass(losses._CLASSES[n], losses.FeatureLoss) and n != "WeightedLosses"]
)
def test_logit_standardization_reaches_every_response_loss(name):
    """`logit_standardization=True` goes through each constructor to the base class: it is kept in
    the config and the loss equals the same loss on z-scored logits."""
    cls = losses._CLASSES[name]
    loss = cls(**REQUIRED.get(name, {}), logit_standardization=True)
    assert loss.get_config()["logit_standardization"] is True
    plain = cls(**REQUIRED.get(name, {}))
    z = lambda x: (x - x.mean(-1, keepdims=True)) / (1e-7 + x.std(-1, ddof=1, keepdims=True))  # noqa: E731
    want = float(plain(z(T), z(S), labels=LABELS, temperature=1.5))
    assert float(loss(T, S, labels=LABELS, temperature=1.5)) == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_the_functional_forms_default_to_a_temperature_of_one_and_the_authors_weights():
    """Called without settings, each function is its loss at T = 1 with the paper's defaults."""
    explicit = {
        losses.forward_kl: {"temperature": 1.0},
        losses.reverse_kl: {"temperature": 1.0},
        losses.soft_target_crossentropy: {"temperature": 1.0},
        losses.kd_loss: {"temperature": 1.0},
        losses.dist_loss: {"beta": 1.0, "gamma": 1.0, "temperature": 1.0},
        losses.generalized_jsd: {"beta": 0.5, "temperature": 1.0},
        losses.skew_kl: {"skew": 0.1, "temperature": 1.0},
        losses.skew_reverse_kl: {"skew": 0.1, "temperature": 1.0},
        losses.uld_loss: {"temperature": 1.0},
    }
    for fn, settings in explicit.items():
        got, want = np.asarray(fn(T, S)), np.asarray(fn(T, S, **settings))
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=fn.__name__)
        other = {**settings, "temperature": 2.5}
        assert not np.allclose(np.asarray(fn(T, S, **other)), want), fn.__name__
    # Decoupled KD: target weight 1, non-target weight 8 and T = 4 (Zhao et al.); CTKD: T from 1 to 21
    # over 10 epochs (Li et al.).
    np.testing.assert_allclose(
        np.asarray(losses.dkd_loss(T, S, LABELS)), np.asarray(losses.dkd_loss(T, S, LABELS, 1.0, 8.0, 4.0)), rtol=1e-6
    )
    ctkd = losses.CTKDLoss().get_config()
    assert (ctkd["t_start"], ctkd["t_range"], ctkd["decay_epochs"]) == (1.0, 20.0, 10)


def test_keras_losses_given_as_distillation_losses_keep_their_reduction():
    """A Keras KL divergence becomes Hinton's loss and any other Keras loss applies to the soft
    targets; either way the reduction the user set on it is kept."""
    kl = losses.get(keras.losses.KLDivergence(reduction="sum"))
    assert isinstance(kl, losses.KDLoss) and kl.get_config()["reduction"] == "sum"
    mse = losses.get(keras.losses.MeanSquaredError(reduction="sum"))
    assert isinstance(mse, losses.SoftTargetLoss) and mse.get_config()["reduction"] == "sum"
    assert losses.get(keras.losses.MeanSquaredError()).get_config()["reduction"] == "sum_over_batch_size"


def test_kl_divergence_functions_by_any_of_their_names_are_hintons_loss():
    def kld(t, s):
        return t

    def kullback_leibler_divergence(t, s):
        return t

    class Distance:  # a callable object without a __name__
        def __call__(self, t, s):
            return ops.mean(ops.abs(t - s), axis=-1)

    assert isinstance(losses.get(kld), losses.KDLoss)
    assert isinstance(losses.get(kullback_leibler_divergence), losses.KDLoss)
    assert type(losses.get(Distance())) is losses.SoftTargetLoss


@pytest.mark.parametrize("name", _classes())
def test_every_loss_is_found_by_its_class_name_here_and_in_keras(name):
    """`losses.get("KDLoss")` and Keras's own deserialization (a saved Distiller's compile config)
    both find the class under its name."""
    cls = losses._CLASSES[name]
    assert type(losses.get({"name": name, **REQUIRED.get(name, {})})) is cls
    if name not in REQUIRED:
        assert type(losses.get(name)) is cls and name in losses.known_names()
    assert keras.utils.get_registered_object(f"keras_kd>{name}") is cls
    assert keras.utils.get_registered_name(cls) == f"keras_kd>{name}"


def test_a_hand_written_config_or_spec_builds_its_loss_and_a_bad_one_says_what_is_known():
    # What a user writes by hand in YAML or JSON: the class name alone, or the registered key.
    loss = losses.deserialize({"class_name": "KDLoss", "config": {"temperature": 3.0}})
    assert type(loss) is losses.KDLoss and loss.temperature == 3.0
    assert type(losses.deserialize(losses.serialize(loss))) is losses.KDLoss
    for spec in ({"name": "kd", "temperature": 5.0}, {"key": "kd", "temperature": 5.0}):
        built = losses.from_spec(spec)
        assert type(built) is losses.KDLoss and built.temperature == 5.0
    for config in ({"class_name": "NoSuchLoss", "config": {}}, {"config": {}}):
        with pytest.raises(ValueError, match="Could not interpret distillation loss config of class .*known classes: "):
            losses.deserialize(config)
    with pytest.raises(ValueError, match="Bad arguments for distillation loss KDLoss") as error:
        losses.from_spec({"name": "kd", "temprature": 5.0})
    accepted = str(error.value).split("It accepts: ")[1].rstrip(".").split(", ")
    assert "temperature" in accepted and "self" not in accepted and "kwargs" not in accepted


def test_wrapped_keras_losses_are_named_after_what_they_wrap_and_keep_it_through_a_round_trip():
    def my_distance(t, s):
        return ops.mean(ops.abs(t - s), axis=-1)

    nameless = functools.partial(my_distance)  # a callable with no name of its own
    assert losses.KerasFeatureLoss(keras.losses.Huber()).name == "feature_huber_loss"
    assert losses.KerasLogitsLoss(nameless).name == "logits_loss"
    assert losses.KerasFeatureLoss(nameless).name == "feature_loss"
    assert losses.SoftTargetLoss(keras.losses.Huber()).name == "soft_target_huber_loss"
    assert losses.SoftTargetLoss(nameless).name == "soft_target_loss"
    mae = losses.SoftTargetLoss("mae", temperature=2.0)
    restored = losses.deserialize(losses.serialize(mae))
    assert float(restored(T, S)) == pytest.approx(float(mae(T, S)), rel=1e-6)
    assert float(losses.SoftTargetLoss("mse", temperature=2.0)(T, S)) != pytest.approx(float(mae(T, S)), rel=1e-3)
    # a plain function has no reduction of its own: the loss it becomes averages over the batch
    assert ops.shape(losses.get(my_distance)(T, S)) == ()


@pytest.mark.skipif(IS_TF_KERAS, reason="tf_keras's Loss takes no dtype")
@pytest.mark.parametrize("name", _classes())
def test_every_loss_passes_keras_arguments_on(name):
    cls = losses._CLASSES[name]
    loss = cls(**REQUIRED.get(name, {}), dtype="float64")
    assert loss.dtype == "float64"


def test_attention_transfer_and_crd_default_to_the_papers_settings():
    from keras_kd.losses.attention_transfer_loss import attention_map, attention_transfer_loss

    np.testing.assert_allclose(np.asarray(attention_map(FT)), np.asarray(attention_map(FT, p=2.0)), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(attention_transfer_loss(FT, FS)), np.asarray(attention_transfer_loss(FT, FS, p=2.0)), rtol=1e-6
    )
    assert losses.AttentionTransferLoss().p == 2.0
    config = losses.CRDLoss(num_examples=2).get_config()  # two examples: the fewest CRD can draw negatives from
    assert (config["feature_dim"], config["num_negatives"], config["momentum"]) == (128, 4096, 0.5)
    with pytest.raises(ValueError, match="num_examples"):
        losses.CRDLoss(num_examples=1)


def test_keras_call_protocol_uses_the_losss_own_temperature():
    # `call(y_true, y_pred)` is what Keras runs when the loss is given to a plain `Model.compile`.
    for temperature, expected in ((3.0, 3.0), (None, 1.0)):
        loss = losses.KDLoss(temperature=temperature)
        np.testing.assert_allclose(
            np.asarray(loss.call(T, S)), np.asarray(loss.compute(T, S, temperature=expected)), rtol=1e-6
        )


def test_dist_keeps_its_own_temperature_over_the_distillers_and_defaults_to_one():
    own = losses.DISTLoss(temperature=4.0)
    assert float(own(T, S, temperature=1.0)) == pytest.approx(float(own(T, S)), rel=1e-6)
    assert float(own(T, S)) != pytest.approx(float(losses.DISTLoss(temperature=1.0)(T, S)), rel=1e-3)
    unset = losses.DISTLoss()
    assert float(unset(T, S)) == pytest.approx(float(losses.DISTLoss(temperature=1.0)(T, S)), rel=1e-6)
    assert float(unset(T, S, temperature=2.0)) == pytest.approx(float(losses.DISTLoss(temperature=2.0)(T, S)), rel=1e-6)
