"""`compile(loss_chunk_size=...)`: a keras-hub causal LM's losses over chunks of positions.

What a user relies on: the chunked step trains exactly as the whole-sequence step does (the same
logged losses, the same weights after a step, with padding, labels, a temperature and a top-k
cache), and what it cannot do is refused at compile. The memory it saves is measured in
`benchmarks/language_model_memory.py`, not here.
"""

import importlib.util

import numpy as np
import pytest

from keras_kd import Distiller, TopKTeacherCache
from keras_kd.backend import IS_TF_KERAS, keras, to_numpy

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason="needs keras-hub (the text extra)"),
    pytest.mark.skipif(IS_TF_KERAS, reason="keras-hub and keras.remat run on Keras 3 only"),
]

VOCABULARY, LENGTH = 37, 12
# One step per compiled function: JAX's tracing and XLA compilation cost more than the tiny steps.
EAGER = keras.backend.backend() == "jax"


def gpt2(width, seed):
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY,
        num_layers=1,
        num_heads=2,
        hidden_dim=width,
        intermediate_dim=2 * width,
        dropout=0.0,
        max_sequence_length=LENGTH,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def batch(count=10, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, LENGTH + 1, count)
    mask = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(1, VOCABULARY, (count, LENGTH)).astype("int32") * mask
    labels = np.roll(ids, -1, axis=1).astype("int64")
    labels[rng.random(labels.shape) < 0.2] = -1  # some tokens unlabelled (MISSING_LABEL): distilled only
    return {"token_ids": ids, "padding_mask": mask}, labels, mask.astype("float32")


def one_step(chunk, cache=False, loss="kd", learning_rate=1.0, label_loss=None):
    """The logged losses of one SGD step on one batch, and the student's weights after it (`cache=False`:
    the live teacher, whose logits the chunked step computes chunk by chunk from its hidden states)."""
    x, y, weight = batch()
    student, teacher = gpt2(8, seed=1), gpt2(16, seed=2)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        distillation_loss_fn=loss,
        student_loss_fn=label_loss,
        alpha=0.3,
        temperature=2.0,
        loss_chunk_size=chunk,
        run_eagerly=EAGER,
    )
    history = distiller.fit(
        x, y, sample_weight=weight, batch_size=10, epochs=1, shuffle=False, verbose=0, teacher_cache=cache
    ).history
    return history, [to_numpy(w) for w in student.trainable_weights]


@pytest.mark.parametrize("loss", ["generalized_jsd"])  # (kd: the cache and label-loss tests below)
def test_chunks_of_positions_train_as_the_whole_sequence(loss):
    whole, whole_weights = one_step(None, loss=loss)
    start = one_step(None, learning_rate=0.0)[1]
    assert max(float(np.abs(a - b).max()) for a, b in zip(whole_weights, start)) > 1e-3  # the step moved them
    chunked, chunked_weights = one_step(5, loss=loss)  # chunks of 5, 5 and 2 positions
    for key in ("student_loss", "distillation_loss", "loss"):
        assert chunked[key][0] == pytest.approx(whole[key][0], rel=1e-4), key  # float32 sums in another order
    for ours, theirs in zip(chunked_weights, whole_weights):  # equal steps from equal weights: equal gradients
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def test_a_label_loss_summed_over_tokens_stays_a_sum():
    summed = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    whole, _ = one_step(None, label_loss=summed, learning_rate=0.0)
    chunked, _ = one_step(5, label_loss=summed, learning_rate=0.0)
    assert chunked["student_loss"][0] == pytest.approx(whole["student_loss"][0], rel=1e-4)


def test_a_top_k_cache_with_a_tail_bucket_is_rebuilt_chunk_by_chunk():
    x, _, _ = batch()
    cache = TopKTeacherCache.build(gpt2(16, seed=2), x, top_k=4, tail="bucket")
    whole, whole_weights = one_step(None, cache=cache)
    chunked, chunked_weights = one_step(5, cache=cache)
    assert chunked["distillation_loss"][0] == pytest.approx(whole["distillation_loss"][0], rel=1e-4)
    for ours, theirs in zip(chunked_weights, whole_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def test_what_the_chunked_step_cannot_do_is_refused_at_compile():
    ids = keras.Input((None,), dtype="int32")
    plain = keras.Model(ids, keras.layers.Dense(VOCABULARY)(keras.layers.Embedding(VOCABULARY, 8)(ids)))
    distiller = Distiller(student=plain, teacher=gpt2(16, seed=2))
    with pytest.raises(ValueError, match="keras-hub causal LM"):
        distiller.compile(optimizer="sgd", loss_chunk_size=4)
    distiller = Distiller(student=gpt2(8, seed=1), teacher=gpt2(16, seed=2))
    with pytest.raises(ValueError, match="metrics"):
        distiller.compile(optimizer="sgd", metrics=["accuracy"], loss_chunk_size=4)
    with pytest.raises(ValueError, match="positive"):
        distiller.compile(optimizer="sgd", loss_chunk_size=0)
    distiller.compile(optimizer="sgd", loss_chunk_size=4)
    assert distiller.get_compile_config()["loss_chunk_size"] == 4
