"""Sequence-level and on-policy distillation of keras-hub causal LMs, checked against a greedy decode by hand."""

import numpy as np
import pytest

from keras_kd.backend import IS_TF_KERAS

if IS_TF_KERAS:
    pytest.skip("keras-hub builds Keras 3 models only", allow_module_level=True)
from keras_kd import Distiller  # noqa: E402
from keras_kd.backend import keras, to_numpy  # noqa: E402
from keras_kd.data.sequence_level import (  # noqa: E402
    OnPolicySequences,
    next_token_data,
    prompts_of,
    teacher_transfer_set,
)
from keras_kd.data.transfer import MISSING_LABEL  # noqa: E402
from tests.test_keras_hub_lm import LENGTH, VOCAB, causal_lm  # noqa: E402

PROMPT = 4


def full_sequences(count=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = ((rng.integers(1, VOCAB, count)[:, None] + np.arange(LENGTH + 1)[None, :]) % (VOCAB - 1) + 1).astype("int32")
    return ids, np.ones_like(ids)


def greedy_by_hand(model, ids, prompt_length):
    """Each next token the argmax of a full forward pass over the tokens so far."""
    ids = ids.copy()
    ids[:, prompt_length:] = 0
    for t in range(prompt_length, ids.shape[1]):
        mask = (np.arange(ids.shape[1])[None, :] < t).astype("int32") * np.ones_like(ids)
        logits = to_numpy(model({"token_ids": ids, "padding_mask": mask}))
        ids[:, t] = logits[:, t - 1].argmax(-1)
    return ids


def test_the_teacher_writes_the_transfer_set_with_the_sampler_given():
    keras.utils.set_random_seed(3)
    teacher = causal_lm(2, 16)
    ids, mask = full_sequences()
    x, y, weight = teacher_transfer_set(teacher, prompts_of({"token_ids": ids, "padding_mask": mask}, PROMPT), "greedy")
    expected = greedy_by_hand(teacher, ids, PROMPT)
    np.testing.assert_array_equal(np.concatenate([x["token_ids"], y[:, -1:]], axis=1), expected)
    assert weight.shape == y.shape and np.all(weight == 1)
    assert teacher.sampler.__class__.__name__ != "GreedySampler"  # the model's own sampler is restored


def test_on_policy_rows_are_the_students_current_generations_without_labels():
    keras.utils.set_random_seed(4)
    teacher, student = causal_lm(2, 16), causal_lm(1, 8)
    x, y, weight = next_token_data(*full_sequences(16))
    data = OnPolicySequences(x, y, weight, student, PROMPT, student_fraction=0.25, sampler="greedy", batch_size=8)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), distillation_loss_fn="generalized_jsd", alpha=0.5)
    for _ in range(2):  # before training, then after an epoch moved the student's weights
        data.on_epoch_begin()
        rows = np.flatnonzero(data.generated_rows)
        assert len(rows) == 4
        got_x = np.concatenate([data[i][0]["token_ids"] for i in range(len(data))])
        got_y = np.concatenate([data[i][1] for i in range(len(data))])
        full = np.concatenate([x["token_ids"], y[:, -1:]], axis=1)
        expected = greedy_by_hand(student, full[rows], PROMPT)
        np.testing.assert_array_equal(got_x[rows], expected[:, :-1])
        assert np.all(got_y[rows][:, PROMPT - 1 :] == MISSING_LABEL)
        np.testing.assert_array_equal(got_y[rows][:, : PROMPT - 1], y[rows][:, : PROMPT - 1])
        got_weight = np.concatenate([data[i][2] for i in range(len(data))])
        assert np.all(got_weight[rows] == 1)  # every written token distilled, the last one too (no label)
        others = np.setdiff1d(np.arange(16), rows)
        np.testing.assert_array_equal(got_x[others], x["token_ids"][others])
        np.testing.assert_array_equal(got_y[others], y[others])
        data.on_epoch_end()
        before = [to_numpy(w).copy() for w in student.trainable_weights]
        history = distiller.fit(data, epochs=1, verbose=0).history
        assert np.isfinite(history["distillation_loss"][0])
        assert any(not np.array_equal(to_numpy(w), b) for w, b in zip(student.trainable_weights, before))


def test_on_policy_settings_are_checked():
    x, y, weight = next_token_data(*full_sequences(4))
    with pytest.raises(ValueError, match="student_fraction"):
        OnPolicySequences(x, y, weight, None, PROMPT, student_fraction=1.5)
    with pytest.raises(ValueError, match="prompt_length"):
        OnPolicySequences(x, y, weight, None, LENGTH)
