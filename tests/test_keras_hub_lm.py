"""keras-hub language models as teacher and student: tiny GPT-2 configurations built here (no download),
distilled with `Distiller.fit` on preprocessed inputs (`token_ids`, `padding_mask`), next-token labels."""

import numpy as np
import pytest

from keras_kd.backend import IS_TF_KERAS

if IS_TF_KERAS:
    pytest.skip(
        "keras-hub builds Keras 3 models only; tf_keras (TF_USE_LEGACY_KERAS=1) cannot run them",
        allow_module_level=True,
    )
from keras_kd import Distiller  # noqa: E402
from keras_kd.backend import keras, to_numpy  # noqa: E402
from tests import reference  # noqa: E402

keras_hub = pytest.importorskip("keras_hub")
VOCAB, LENGTH = 64, 12


def causal_lm(layers, width, vocabulary=VOCAB, dropout=0.0):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary,
        num_layers=layers,
        num_heads=2,
        hidden_dim=width,
        intermediate_dim=2 * width,
        max_sequence_length=LENGTH + 1,
        dropout=dropout,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def batch(count=16, seed=0):
    """What a keras-hub CausalLM preprocessor returns: inputs shifted from labels, the padding as weights."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, LENGTH + 2, count)
    padding = (np.arange(LENGTH + 1)[None, :] < lengths[:, None]).astype("int32")
    # A learnable pattern: each token is the previous one plus one, from a random start.
    ids = ((rng.integers(1, VOCAB, count)[:, None] + np.arange(LENGTH + 1)[None, :]) % (VOCAB - 1) + 1) * padding
    x = {"token_ids": ids[:, :-1].astype("int32"), "padding_mask": padding[:, :-1]}
    return x, ids[:, 1:].astype("int64"), padding[:, 1:].astype("float32")


def test_a_causal_lm_distils_into_a_smaller_one_with_fit():
    teacher, student = causal_lm(2, 32), causal_lm(1, 16)
    x, y, weight = batch(64)
    teacher.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(True),
        weighted_metrics=[],
    )
    teacher.fit(x, y, sample_weight=weight, epochs=4, batch_size=16, verbose=0)
    teacher_weights = [to_numpy(w).copy() for w in teacher.weights]
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), distillation_loss_fn="gkd", alpha=0.5, temperature=1.0)
    history = distiller.fit(x, y, sample_weight=weight, epochs=4, batch_size=16, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and history["distillation_loss"][-1] < history["distillation_loss"][0]
    assert all(np.array_equal(to_numpy(w), before) for w, before in zip(teacher.weights, teacher_weights))
    assert isinstance(distiller.student, keras_hub.models.GPT2CausalLM)  # its own class, preprocessor and generate


@pytest.mark.parametrize(
    "loss_name, per_token",
    [
        ("forward_kl", lambda t, s: reference.hinton_kd(t, s, 1.0)),
        ("reverse_kl", lambda t, s: reference.reverse_kl(t, s, 1.0)),
    ],
)
def test_losses_average_over_the_real_tokens_of_padding_mask_and_sample_weight(loss_name, per_token):
    teacher, student = causal_lm(1, 32), causal_lm(1, 16)
    x, y, weight = batch(8, seed=1)
    weight[0, :2] = 0.0  # a sample weight can drop tokens the padding mask keeps
    real = weight * x["padding_mask"]
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", distillation_loss_fn=loss_name, alpha=0.5, temperature=1.0)
    result = distiller.evaluate(x, y, sample_weight=weight, batch_size=8, verbose=0, return_dict=True)
    t, s = to_numpy(teacher(x)), to_numpy(student(x))
    ce = reference.crossentropy(y.reshape(-1), s.reshape(-1, VOCAB)).reshape(y.shape)
    assert result["student_loss"] == pytest.approx(reference.real_token_mean(ce, real), rel=1e-4)
    assert result["distillation_loss"] == pytest.approx(reference.real_token_mean(per_token(t, s), real), rel=1e-4)


def tiny_backbone(max_sequence_length, **kwargs):
    """A one-layer GPT-2 backbone, 16 wide: a student to put a head of one's own on."""
    return keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=max_sequence_length,
        **kwargs,
    )


def test_a_backbone_with_its_own_lm_head_is_a_student_too():
    backbone = tiny_backbone(LENGTH + 1, dropout=0.0)
    student = keras.Model(backbone.input, keras.layers.Dense(VOCAB, name="lm_head")(backbone.output))
    distiller = Distiller(student=student, teacher=causal_lm(1, 32))
    distiller.compile(optimizer="adam", distillation_loss_fn="forward_kl", alpha=0.0, temperature=2.0)
    x, y, weight = batch(16)
    # Its loss is the forward KL at T=2 over the real tokens of the inputs' padding mask (sample
    # weights of 1 everywhere leave the mask alone to say which tokens are real), as for a CausalLM
    # student; training moves the head of one's own.
    t, s = to_numpy(distiller.teacher(x)), to_numpy(student(x))
    want = reference.real_token_mean(reference.hinton_kd(t, s, 2.0), x["padding_mask"])
    ones = np.ones_like(weight)
    result = distiller.evaluate(x, y, sample_weight=ones, batch_size=16, verbose=0, return_dict=True)
    assert result["distillation_loss"] == pytest.approx(want, rel=1e-4)
    head = to_numpy(student.get_layer("lm_head").kernel).copy()
    distiller.fit(x, y, sample_weight=weight, epochs=1, batch_size=8, verbose=0)
    assert not np.allclose(to_numpy(student.get_layer("lm_head").kernel), head)


def test_vocabulary_mismatch_is_refused_at_compile_naming_both_sizes():
    """Token-level losses need one vocabulary; the sizes are read from keras-hub's backbone and from
    a head of one's own, and the error (at compile, before any training) names ULD."""
    distiller = Distiller(student=causal_lm(1, 16, vocabulary=48), teacher=causal_lm(1, 16))
    with pytest.raises(ValueError, match=r"teacher's vocabulary has 64 tokens but the student's has 48"):
        distiller.compile(optimizer="adam")
    backbone = tiny_backbone(8)
    student = keras.Model(backbone.input, keras.layers.Dense(40)(backbone.output))
    distiller = Distiller(student=student, teacher=causal_lm(1, 16))
    with pytest.raises(ValueError, match="vocabulary has 64 tokens but the student's has 40.*'uld'"):
        distiller.compile(optimizer="adam", distillation_loss_fn="forward_kl")


def test_a_distilled_lm_exports_a_next_token_saved_model_that_saved_model_cli_runs(tmp_path):
    """The serving signature: token ids and padding mask in, the distribution after each row's last real token out."""
    import subprocess

    from keras_kd.backend import BACKEND
    from keras_kd.compression import export_saved_model
    from tests.test_compression import _saved_model_cli

    if BACKEND != "tensorflow":
        pytest.skip("SavedModels are written by the TensorFlow backend")
    student = causal_lm(1, 16)
    x, _, _ = batch(8, seed=3)
    path = export_saved_model(student, str(tmp_path), "lm", signature="next_token")
    np.save(tmp_path / "ids.npy", x["token_ids"])
    np.save(tmp_path / "mask.npy", x["padding_mask"])
    cli = subprocess.run(
        [_saved_model_cli(), "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default"]
        + ["--inputs", f"token_ids={tmp_path / 'ids.npy'};padding_mask={tmp_path / 'mask.npy'}"]
        + ["--outdir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    logits = to_numpy(student(x)).astype("float64")
    last = x["padding_mask"].sum(1) - 1
    at_last = logits[np.arange(len(last)), last]
    expected = np.exp(at_last - at_last.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "next_token_probabilities.npy"), expected, atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "next_token.npy"), expected.argmax(-1))
