"""Token-level distillation: logits `(batch, time, classes)`, padding from sample weights, Keras masks and
keras-hub's `padding_mask`, means over the real tokens only, each checked against NumPy computed by hand."""

import numpy as np
import pytest

from keras_kd import Distiller, losses
from keras_kd.backend import keras, to_numpy
from keras_kd.data.transfer import MISSING_LABEL, fill_missing, label_mask
from tests import reference

RNG = np.random.default_rng(3)
BATCH, TIME, VOCAB = 4, 6, 9
LENGTHS = np.array([6, 4, 1, 3])
PADDING = (np.arange(TIME)[None, :] < LENGTHS[:, None]).astype("float32")  # (batch, time), 1 on real tokens


def logits(shape=(BATCH, TIME, VOCAB), scale=3.0):
    return RNG.normal(scale=scale, size=shape).astype("float32")


PER_TOKEN = {  # loss -> its per-token value in NumPy
    "kd": lambda t, s, temperature: reference.hinton_kd(t, s, temperature),
    "soft_target_crossentropy": lambda t, s, temperature: reference.soft_crossentropy(t, s, temperature),
    "logits_mse": lambda t, s, temperature: np.mean((s.astype(np.float64) - t) ** 2, axis=-1),
    "reverse_kl": lambda t, s, temperature: reference.reverse_kl(t, s, temperature),
    "generalized_jsd": lambda t, s, temperature: reference.generalized_jsd(t, s, 0.5, temperature),
    "skew_kl": lambda t, s, temperature: reference.skew_kl(t, s, 0.1, temperature),
}


@pytest.mark.parametrize("name", sorted(PER_TOKEN))
@pytest.mark.parametrize("weight_shape", ["(batch, time)", "(batch, time, 1)", "weighted"])
def test_per_token_losses_average_over_real_tokens(name, weight_shape):
    t, s = logits(), logits()
    weights = PADDING * (RNG.uniform(0.5, 2.0, PADDING.shape) if weight_shape == "weighted" else 1.0)
    passed = weights[..., None] if weight_shape == "(batch, time, 1)" else weights
    loss = losses.get(name)
    got = float(loss(t, s, sample_weight=passed, temperature=2.0))
    want = reference.real_token_mean(PER_TOKEN[name](t, s, 2.0), weights)
    assert got == pytest.approx(want, rel=2e-4, abs=1e-6)
    unreduced = np.asarray(loss.compute(t, s, temperature=2.0))
    assert unreduced.shape == (BATCH, TIME)
    # Without weights every position counts; a (batch,) weight weighs each sequence's tokens.
    assert float(loss(t, s, temperature=2.0)) == pytest.approx(np.mean(PER_TOKEN[name](t, s, 2.0)), rel=2e-4)
    per_sequence = np.array([1.0, 0.0, 2.0, 1.0], "float32")
    got = float(loss(t, s, sample_weight=per_sequence, temperature=2.0))
    assert got == pytest.approx(reference.real_token_mean(PER_TOKEN[name](t, s, 2.0), per_sequence[:, None]), rel=2e-4)


def test_dkd_takes_one_label_per_token():
    t, s = logits(), logits()
    labels = RNG.integers(0, VOCAB, (BATCH, TIME))
    got = float(losses.DKDLoss(temperature=2.0)(t, s, labels=labels, sample_weight=PADDING))
    flat = reference.dkd(t.reshape(-1, VOCAB), s.reshape(-1, VOCAB), labels.reshape(-1), 1.0, 8.0, 2.0)
    assert got == pytest.approx(reference.real_token_mean(flat, PADDING.reshape(-1)), rel=2e-4)
    one_hot = float(losses.DKDLoss(temperature=2.0)(t, s, labels=np.eye(VOCAB)[labels], sample_weight=PADDING))
    assert one_hot == pytest.approx(got, rel=1e-5)


def test_dist_per_position_form_leaves_padding_out():
    t, s = logits(scale=1.0), logits(scale=1.0)
    real = PADDING.reshape(-1) > 0
    want = reference.dist(t.reshape(-1, VOCAB)[real], s.reshape(-1, VOCAB)[real], 1.0, 2.0, 2.0)
    got = float(losses.DISTLoss(beta=1.0, gamma=2.0, temperature=2.0)(t, s, sample_weight=PADDING))
    assert got == pytest.approx(want, rel=2e-4)
    unpadded = float(losses.DISTLoss(beta=1.0, gamma=2.0, temperature=2.0)(t, s))
    assert unpadded == pytest.approx(
        reference.dist(t.reshape(-1, VOCAB), s.reshape(-1, VOCAB), 1.0, 2.0, 2.0), rel=2e-4
    )
    with pytest.raises(ValueError, match="cannot weigh them"):  # per-sample DIST still refuses weights
        losses.DISTLoss()(t[:, 0], s[:, 0], sample_weight=np.ones(BATCH))


def test_logits_crossentropy_and_label_helpers_take_one_label_per_token():
    s = logits()
    labels = RNG.integers(0, VOCAB, (BATCH, TIME))
    got = np.asarray(losses.LogitsCrossentropy().call(labels, s))
    want = reference.crossentropy(labels.reshape(-1), s.reshape(-1, VOCAB)).reshape(BATCH, TIME)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    labels[0, 2] = MISSING_LABEL
    mask = np.asarray(label_mask(labels, s))
    assert mask.shape == (BATCH, TIME) and mask[0, 2] == 0 and mask.sum() == BATCH * TIME - 1
    filled = np.asarray(fill_missing(labels, mask, fallback=np.full((BATCH, TIME), 5)))
    assert filled[0, 2] == 5 and np.array_equal(np.delete(filled, 2), np.delete(labels, 2))


def _token_ids():
    ids = RNG.integers(1, VOCAB, (BATCH, TIME)).astype("int32")
    return ids * PADDING.astype("int32")  # 0 marks padding


def _language_model(width, mask_zero=False, dict_inputs=False):
    if dict_inputs:  # keras-hub's input names
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
        }
        hidden = keras.layers.Embedding(VOCAB, width, embeddings_initializer="normal")(inputs["token_ids"])
    else:
        inputs = keras.Input((None,), dtype="int32")
        hidden = keras.layers.Embedding(VOCAB, width, embeddings_initializer="normal", mask_zero=mask_zero)(inputs)
    hidden = keras.layers.Dense(width, activation="tanh")(hidden)
    # Logits of order 1, so that the KL is not lost in float32 rounding.
    return keras.Model(
        inputs, keras.layers.Dense(VOCAB, kernel_initializer=keras.initializers.RandomNormal(0.0, 2.0))(hidden)
    )


def _by_hand(distiller, x, y, weights, temperature):
    """(student loss, distillation loss): NumPy means over the real (and, for labels, labelled) tokens."""
    t = to_numpy(distiller.teacher(x))
    s = to_numpy(distiller.student(x))
    labelled = weights * (y >= 0)
    ce = reference.crossentropy(np.maximum(y, 0).reshape(-1), s.reshape(-1, VOCAB)).reshape(BATCH, TIME)
    return reference.real_token_mean(ce, labelled), reference.real_token_mean(
        reference.hinton_kd(t, s, temperature), weights
    )


@pytest.mark.parametrize("padding_from", ["sample_weight", "keras_mask", "padding_mask"])
def test_distiller_losses_average_over_real_tokens(padding_from):
    ids = _token_ids()
    y = np.roll(ids, -1, axis=1).astype("int64")
    y[1, 0] = MISSING_LABEL  # a real token without a label: distilled, not in the label loss
    mask_zero, dict_inputs = padding_from == "keras_mask", padding_from == "padding_mask"
    teacher, student = _language_model(16, mask_zero, dict_inputs), _language_model(8, mask_zero, dict_inputs)
    x = {"token_ids": ids, "padding_mask": PADDING.astype("int32")} if dict_inputs else ids
    sample_weight = PADDING if padding_from == "sample_weight" else None
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", alpha=0.5, temperature=2.0)
    want_student, want_distillation = _by_hand(distiller, x, y, PADDING, 2.0)
    result = distiller.evaluate(x, y, sample_weight=sample_weight, batch_size=BATCH, verbose=0, return_dict=True)
    assert result["student_loss"] == pytest.approx(want_student, rel=1e-4)
    assert result["distillation_loss"] == pytest.approx(want_distillation, rel=1e-4)
    assert result["loss"] == pytest.approx(0.5 * want_student + 0.5 * want_distillation, rel=1e-4)


def test_distiller_fits_a_sequence_model_with_padding_and_reports_token_accuracy():
    ids = _token_ids()
    x, y = np.concatenate([ids] * 4), np.concatenate([np.roll(ids, -1, axis=1)] * 4)
    teacher, student = _language_model(16, mask_zero=True), _language_model(8, mask_zero=True)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.05),
        metrics=["accuracy"],
        alpha=0.5,
        temperature=1.0,
        distillation_loss_fn="generalized_jsd",
    )
    history = distiller.fit(x, y, sample_weight=np.concatenate([PADDING] * 4), epochs=3, batch_size=8, verbose=0)
    loss = history.history["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    accuracy = distiller.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    s = to_numpy(student(x)).argmax(-1)
    real = np.concatenate([PADDING] * 4) > 0
    assert accuracy == pytest.approx(np.mean(s[real] == y[real]), abs=1e-6)


@pytest.mark.parametrize("padding_from", ["sample_weight", "padding_mask"])
def test_feature_terms_on_sequence_features_average_over_real_tokens(padding_from):
    """A hint on hidden states `(batch, time, width)`: one value per token, padding left out."""
    from keras_kd import FeatureDistillation

    ids = _token_ids()
    y = np.roll(ids, -1, axis=1).astype("int64")
    dict_inputs = padding_from == "padding_mask"
    teacher, student = _language_model(8, dict_inputs=dict_inputs), _language_model(8, dict_inputs=dict_inputs)
    hidden_layer = {
        m: next(layer for layer in m.layers if isinstance(layer, keras.layers.Dense)) for m in (teacher, student)
    }
    hint = FeatureDistillation("fitnets", hidden_layer[teacher].name, hidden_layer[student].name, weight=1.0)
    distiller = Distiller(student=student, teacher=teacher, features=[hint])
    distiller.compile(optimizer="sgd", alpha=0.5, temperature=2.0)
    x = {"token_ids": ids, "padding_mask": PADDING.astype("int32")} if dict_inputs else ids
    sample_weight = None if dict_inputs else PADDING
    result = distiller.evaluate(x, y, sample_weight=sample_weight, batch_size=BATCH, verbose=0, return_dict=True)
    hidden = [to_numpy(keras.Model(m.input, hidden_layer[m].output)(x)) for m in (teacher, student)]
    per_token = np.mean((hidden[1].astype(np.float64) - hidden[0]) ** 2, axis=-1)
    key = next(name for name in result if name.startswith("fitnets"))
    assert result[key] == pytest.approx(reference.real_token_mean(per_token, PADDING), rel=1e-4)
    assert result[key] != pytest.approx(per_token.mean(), rel=1e-3)  # padding would have moved it
    history = distiller.fit(x, y, sample_weight=sample_weight, epochs=2, batch_size=BATCH, verbose=0).history
    assert np.all(np.isfinite(history[key]))


def test_position_weight_shapes_a_sample_weight_for_values_of_any_rank():
    from keras_kd.data.tokens import position_weight

    def shape(weight, rank):
        return tuple(np.asarray(position_weight(weight, rank)).shape)

    assert shape(np.ones((4, 1)), 1) == (4,)  # a trailing 1 dropped
    assert shape(np.ones((1, 1)), 1) == (1,)  # a batch of one keeps its batch axis
    assert shape(np.ones((4, 6, 1)), 2) == (4, 6)
    assert shape(np.ones((1, 6, 1)), 2) == (1, 6)  # only the trailing 1 goes, not the batch of one
    assert shape(np.ones((4,)), 3) == (4, 1, 1)  # per sample, against per-token values
    assert shape(np.ones((4, 1)), 2) == (4, 1)  # already of the values' rank: kept
    assert shape(np.ones((4, 6)), 1) == (4, 6)  # a rank above that is not a trailing 1: kept as given
    assert shape(np.ones((4, 6, 1)), 1) == (4, 6, 1)  # two ranks above: kept as given, trailing 1 and all
    np.testing.assert_array_equal(np.asarray(position_weight(np.array([[2], [3]]), 1)), [2.0, 3.0])
