"""On-policy distillation in the step (`compile(on_policy=OnPolicy(...))`): each step's batch is
rewritten with the student's generations from that step's weights, checked against a greedy
decode by hand and against the loss of the hand-made batch."""

import numpy as np
import pytest

from keras_kd.backend import IS_TF_KERAS

if IS_TF_KERAS:
    pytest.skip("keras-hub builds Keras 3 models only", allow_module_level=True)
from keras_kd import Distiller, OnPolicy, TeacherCache  # noqa: E402
from keras_kd.backend import keras, to_numpy  # noqa: E402
from keras_kd.data.sequence_level import next_token_data  # noqa: E402
from keras_kd.data.transfer import MISSING_LABEL  # noqa: E402
from keras_kd.saving import compile_arguments, compile_config  # noqa: E402
from keras_kd.teacher.default import why_live  # noqa: E402
from tests.test_keras_hub_lm import LENGTH, causal_lm  # noqa: E402
from tests.test_sequence_level import full_sequences, greedy_by_hand  # noqa: E402

PROMPT = 4


def _distiller(fraction, learning_rate=0.5, seed=0, sampler="greedy", dropout=0.0, **on_policy):
    keras.utils.set_random_seed(seed)
    teacher, student = causal_lm(2, 16), causal_lm(1, 8, dropout=dropout)
    embedding = teacher.backbone.token_embedding.embeddings
    embedding.assign(embedding * 8.0)  # a sharp teacher: a distillation loss far from zero, to compare
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        distillation_loss_fn="forward_kl",
        alpha=0.5,
        temperature=1.0,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        on_policy=OnPolicy(student_fraction=fraction, prompt_length=PROMPT, sampler=sampler, seed=seed, **on_policy),
    )
    return distiller


def _by_hand(student, full_ids):
    """The batch the step should train on: the student's greedy continuations of each row's prompt,
    labelled inside the prompt only."""
    written = greedy_by_hand(student, full_ids, PROMPT)
    y = np.where(np.arange(LENGTH)[None, :] < PROMPT - 1, written[:, 1:], MISSING_LABEL)
    x = {"token_ids": written[:, :-1], "padding_mask": np.ones_like(written[:, :-1])}
    return x, y.astype("int64"), np.ones(y.shape, "float32")


class _Steps(keras.callbacks.Callback):
    """The student's weights before each step, and each step's own loss (Keras logs running means)."""

    def __init__(self):
        super().__init__()
        self.weights, self.means = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append([to_numpy(w).copy() for w in self.model.student.weights])

    def on_train_batch_end(self, batch, logs=None):
        self.means.append({name: float(logs[name]) for name in ("loss", "distillation_loss", "accuracy")})


def test_each_step_distils_the_students_generations_from_that_steps_weights():
    distiller = _distiller(fraction=1.0)
    ids, mask = full_sequences(16)
    x, y, weight = next_token_data(ids, mask)
    steps = _Steps()
    distiller.fit(x, y, sample_weight=weight, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[steps])
    student = distiller.student
    for step, rows in enumerate((slice(0, 8), slice(8, 16))):
        student.set_weights(steps.weights[step])
        hand_x, hand_y, hand_weight = _by_hand(student, ids[rows])
        expected = distiller.evaluate(hand_x, hand_y, sample_weight=hand_weight, verbose=0, return_dict=True)
        for name in ("loss", "distillation_loss", "accuracy"):  # the second small beside the first: on its own
            got = steps.means[0][name] if step == 0 else 2 * steps.means[1][name] - steps.means[0][name]
            np.testing.assert_allclose(got, expected[name], rtol=1e-5)  # 1e-7 measured; the rows kept: 4e-2
    # The second step's text is not what the weights of the first would have written (the per-epoch form).
    student.set_weights(steps.weights[0])
    stale = greedy_by_hand(student, ids[8:16], PROMPT)
    student.set_weights(steps.weights[1])
    assert not np.array_equal(stale, greedy_by_hand(student, ids[8:16], PROMPT))


@pytest.mark.parametrize("weights", ["tokens", "rows", None])
def test_the_rewritten_batch_keeps_each_other_rows_labels_and_weights(weights):
    distiller = _distiller(fraction=0.5)
    on_policy, student = distiller.on_policy, distiller.student
    ids, mask = full_sequences(8)
    mask[5, 9:] = 0  # one short row, left as it is or written to the full width
    x, y, token_weight = next_token_data(ids, mask)
    rng = np.random.default_rng(0)
    sample_weight = {"tokens": token_weight * rng.uniform(0.5, 2, y.shape), "rows": rng.uniform(0.5, 2, 8)}
    sample_weight = sample_weight.get(weights)
    orders = []
    for _ in range(2):
        inputs, rewrite = on_policy.rewrite(student, {key: keras.ops.convert_to_tensor(v) for key, v in x.items()})
        got_y, got_weight = on_policy.labels(rewrite, y, sample_weight, inputs)
        order, count = to_numpy(rewrite["order"]), rewrite["count"]
        got_ids, got_mask, got_y, got_weight = (to_numpy(v) for v in (*inputs.values(), got_y, got_weight))
        assert count == 4 and sorted(order) == list(range(8))
        written, kept = order[:count], order[count:]
        expected = greedy_by_hand(student, ids[written], PROMPT)
        np.testing.assert_array_equal(got_ids[:count], expected[:, :-1])
        np.testing.assert_array_equal(got_y[:count, : PROMPT - 1], y[written, : PROMPT - 1])
        assert np.all(got_y[:count, PROMPT - 1 :] == MISSING_LABEL)
        row_weight = sample_weight[written][:, None] if weights == "rows" else 1.0  # a row's weight stays
        np.testing.assert_allclose(got_weight[:count], np.ones((count, LENGTH)) * row_weight, rtol=1e-6)
        assert np.all(got_mask[:count] == 1)
        np.testing.assert_array_equal(got_ids[count:], x["token_ids"][kept])
        np.testing.assert_array_equal(got_mask[count:], x["padding_mask"][kept])
        np.testing.assert_array_equal(got_y[count:], y[kept])
        if weights == "tokens":
            expected_weight = sample_weight[kept]
        elif weights == "rows":
            expected_weight = sample_weight[kept][:, None] * x["padding_mask"][kept]
        else:
            expected_weight = x["padding_mask"][kept]
        np.testing.assert_allclose(got_weight[count:], expected_weight, rtol=1e-6)
        orders.append(order)
    assert not np.array_equal(*orders)  # the rows are drawn anew each step


def test_the_student_writes_in_inference_mode_inside_the_training_step():
    distiller = _distiller(fraction=1.0, dropout=0.5)  # dropout would change nearly every greedy token
    ids, mask = full_sequences(8)
    x = next_token_data(ids, mask)[0]
    out = distiller({key: keras.ops.convert_to_tensor(v) for key, v in x.items()}, training=True)
    order = to_numpy(out["on_policy"]["order"])
    expected = greedy_by_hand(distiller.student, ids[order], PROMPT)
    np.testing.assert_array_equal(to_numpy(out["inputs"]["token_ids"]), expected[:, :-1])


def test_the_random_state_moves_on_with_every_step():
    distiller = _distiller(fraction=0.5, sampler="top_k")
    x, y, weight = next_token_data(*full_sequences(16))
    states = [[to_numpy(v).copy() for v in distiller.on_policy.variables]]
    for _ in range(2):  # a JAX step hands its new state back only if the Distiller tracks it
        distiller.fit(x, y, sample_weight=weight, batch_size=8, epochs=1, verbose=0)
        states.append([to_numpy(v).copy() for v in distiller.on_policy.variables])
    assert len(states[0]) == 2  # the rows' draw and the sampler's
    for before, after in zip(states, states[1:]):
        assert all(not np.array_equal(b, a) for b, a in zip(before, after))


def test_how_many_rows_the_student_writes():
    assert [OnPolicy(student_fraction=f).rows(8) for f in (0.0, 0.01, 0.5, 1.0)] == [0, 1, 4, 8]
    assert OnPolicy(student_fraction=0.25).rows(12) == 3


def test_on_policy_is_refused_before_training_where_it_cannot_run():
    with pytest.raises(ValueError, match="student_fraction"):
        OnPolicy(student_fraction=1.5)
    with pytest.raises(ValueError, match="prompt_length"):
        OnPolicy(prompt_length=0)
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="generate_step"):
        Distiller(student=dense, teacher=keras.models.clone_model(dense)).compile(on_policy=OnPolicy())
    distiller = _distiller(fraction=0.5)
    x, y, weight = next_token_data(*full_sequences(8))
    assert "on_policy" in why_live(distiller, x, [])  # the teacher is not kept by default
    cache = TeacherCache.build(distiller.teacher, x)
    with pytest.raises(ValueError, match="no teacher cache holds"):
        distiller.fit(x, y, teacher_cache=cache, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="no teacher cache holds"):
        distiller.fit(cache.attach(x), y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="same inputs"):
        distiller.fit({"student_inputs": x, "teacher_inputs": x}, y, epochs=1, verbose=0)
    distiller.on_policy.prompt_length = LENGTH + 1
    before = [to_numpy(w).copy() for w in distiller.student.weights]
    with pytest.raises(ValueError, match="prompt_length"):
        distiller.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(to_numpy(w), b) for w, b in zip(distiller.student.weights, before))


def test_the_compile_config_keeps_the_settings():
    distiller = _distiller(fraction=0.25, seed=3, sampler="top_k", stop_token_ids=[2])
    restored = compile_arguments(compile_config(distiller))["on_policy"]
    assert restored.get_config() == distiller.on_policy.get_config()
    assert (restored.student_fraction, restored.prompt_length, restored.seed) == (0.25, PROMPT, 3)
    assert restored.stop_token_ids == (2,) and type(restored.sampler).__name__ == "TopKSampler"


def test_the_chunked_step_trains_on_policy_as_the_whole_one():
    histories = []
    for chunk in (None, 4):
        distiller = _distiller(fraction=0.5)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.5),
            distillation_loss_fn="forward_kl",
            alpha=0.5,
            loss_chunk_size=chunk,
            on_policy=OnPolicy(student_fraction=0.5, prompt_length=PROMPT, sampler="greedy", seed=1),
        )
        x, y, weight = next_token_data(*full_sequences(16))
        history = distiller.fit(x, y, sample_weight=weight, batch_size=8, epochs=2, shuffle=False, verbose=0).history
        histories.append(history)
    for name in ("loss", "distillation_loss"):
        np.testing.assert_allclose(histories[1][name], histories[0][name], rtol=1e-5)
