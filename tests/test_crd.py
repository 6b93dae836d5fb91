"""CRD: the NCE loss against NumPy, the head's scores, and a Distiller that trains with a memory bank."""

import numpy as np
import pytest

import keras_kd
from keras_kd import losses
from keras_kd.backend import keras
from tests import reference
from tests.test_distiller_methods import convnet

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("batch, negatives", [(1, 3), (4, 16)])
def test_nce_loss_matches_numpy(batch, negatives):
    scores = RNG.uniform(0.01, 3.0, size=(batch, negatives + 1)).astype("float32")
    assert float(losses.nce_loss(scores, 500)) == pytest.approx(reference.nce(scores, 500), rel=1e-5)


def test_head_scores_follow_the_formula(monkeypatch):
    loss = losses.CRDLoss(num_examples=10, feature_dim=4, num_negatives=3, seed=0)
    head = loss.build_head((None, 6), (None, 5), "crd_head")
    negatives = np.array([[1, 2, 3], [4, 5, 6]], "int32")
    monkeypatch.setattr(head, "_negatives", lambda batch: negatives)
    t, s = RNG.normal(size=(2, 5)).astype("float32"), RNG.normal(size=(2, 6)).astype("float32")
    indices = np.array([7, 8])
    got = float(head(t, s, indices, training=False))

    def embed(layer, f):
        kernel, bias = [np.asarray(w, np.float64) for w in layer.get_weights()]
        v = f @ kernel + bias
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    v_s, v_t = embed(head.student_embedding, s), embed(head.teacher_embedding, t)
    contrast = np.concatenate([indices[:, None], negatives], axis=1)
    memory_s, memory_t = np.asarray(head.student_memory, np.float64), np.asarray(head.teacher_memory, np.float64)
    scores_s = np.exp(np.einsum("bkd,bd->bk", memory_t[contrast], v_s) / 0.07)
    scores_t = np.exp(np.einsum("bkd,bd->bk", memory_s[contrast], v_t) / 0.07)
    want = reference.nce(scores_s / (scores_s.mean() * 10), 10) + reference.nce(scores_t / (scores_t.mean() * 10), 10)
    assert got == pytest.approx(want, rel=1e-4)


def test_distiller_with_crd_trains_embeddings_and_memory():
    x = RNG.normal(size=(48, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int64")
    term = keras_kd.FeatureDistillation(
        {"name": "crd", "num_examples": len(x), "feature_dim": 8, "num_negatives": 16, "seed": 1},
        "embed",
        "embed",
        weight=0.8,
        name="crd",
    )
    distiller = keras_kd.Distiller(student=convnet(4, "student"), teacher=convnet(8, "teacher"), features=[term])
    head = distiller.adapters[0]
    memory_before = np.asarray(head.student_memory).copy()
    embedding_before = [w.copy() for w in head.student_embedding.get_weights()]
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), alpha=0.5)
    history = distiller.fit(keras_kd.with_indices(x), y, epochs=2, batch_size=16, verbose=0).history
    assert all(np.isfinite(history["crd_loss"])) and history["crd_loss"][0] > 0
    memory_after = np.asarray(head.student_memory)
    assert not np.allclose(memory_before, memory_after)  # every row visited once an epoch
    np.testing.assert_allclose(np.linalg.norm(memory_after, axis=1), 1.0, rtol=1e-4)
    assert any(not np.array_equal(a, b) for a, b in zip(embedding_before, head.student_embedding.get_weights()))
    assert distiller.predict(keras_kd.with_indices(x), verbose=0).shape == (48, 3)
    with pytest.raises(ValueError, match="with_indices"):
        distiller.fit(x, y, epochs=1, verbose=0)


def test_the_head_keeps_its_settings_and_the_loss_alone_points_to_the_distiller():
    loss = losses.CRDLoss(num_examples=10, feature_dim=4, num_negatives=3, nce_temperature=0.2, momentum=0.3, seed=5)
    head = loss.build_head((None, 6), (None, 5), "crd_head")
    config = head.get_config()
    want = {
        "num_examples": 10,
        "feature_dim": 4,
        "num_negatives": 3,
        "nce_temperature": 0.2,
        "momentum": 0.3,
        "seed": 5,
    }
    assert {key: config[key] for key in want} == want and config["name"] == "crd_head"
    with pytest.raises(ValueError, match=r"inside a Distiller \(FeatureDistillation\('crd', \.\.\.\)\)"):
        loss(RNG.normal(size=(2, 5)), RNG.normal(size=(2, 6)))


def _short(name):
    return name.split("/")[-1].split(":")[0]  # tf_keras: "crd_head/student_memory:0"


def test_memory_banks_start_as_the_authors_uniform_rows_and_are_not_trained():
    """Tian et al.'s memory: uniform in +-1/sqrt(dim/3), a row per example; the seed fixes it."""
    loss = losses.CRDLoss(num_examples=400, feature_dim=12, num_negatives=3, seed=3)
    head = loss.build_head((None, 6), (None, 5), "crd_head")
    bound = 1.0 / np.sqrt(12 / 3.0)
    for name in ("student_memory", "teacher_memory"):
        memory = np.asarray(getattr(head, name))
        assert memory.shape == (400, 12) and _short(getattr(head, name).name) == name
        assert np.abs(memory).max() <= bound and np.abs(memory).max() > 0.95 * bound
        assert memory.min() < -0.9 * bound and abs(memory.mean()) < 0.05 * bound
    assert [_short(w.name) for w in head.non_trainable_weights] == [
        "student_memory",
        "teacher_memory",
        "normalizers",
    ]
    np.testing.assert_array_equal(np.asarray(head.normalizers), [0.0, 0.0])
    again = losses.CRDLoss(num_examples=400, feature_dim=12, num_negatives=3, seed=3).build_head(
        (None, 6), (None, 5), "crd_head"
    )
    np.testing.assert_array_equal(np.asarray(again.student_memory), np.asarray(head.student_memory))


def test_negatives_are_any_example_and_training_moves_the_memory_by_momentum():
    loss = losses.CRDLoss(num_examples=3, feature_dim=4, num_negatives=200, momentum=0.3, seed=0)
    head = loss.build_head((None, 6), (None, 5), "crd_head")
    negatives = np.asarray(head._negatives(4))
    assert negatives.shape == (4, 200) and set(negatives.ravel().tolist()) == {0, 1, 2}
    t, s = RNG.normal(size=(2, 5)).astype("float32"), RNG.normal(size=(2, 6)).astype("float32")
    indices = np.array([2, 0])
    before = {name: np.asarray(getattr(head, name)).copy() for name in ("student_memory", "teacher_memory")}
    head(t, s, indices)  # not training: the memory is left alone
    for name, memory in before.items():
        np.testing.assert_array_equal(np.asarray(getattr(head, name)), memory)
    head(t, s, indices, training=True)

    def embed(layer, f):
        kernel, bias = [np.asarray(w, np.float64) for w in layer.get_weights()]
        v = f @ kernel + bias
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    banks = (("student_memory", head.student_embedding, s), ("teacher_memory", head.teacher_embedding, t))
    for name, layer, f in banks:
        rows = 0.3 * before[name][indices] + 0.7 * embed(layer, f)
        want = before[name].copy()
        want[indices] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        np.testing.assert_allclose(np.asarray(getattr(head, name)), want, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(head.normalizers) > 0)  # Z estimated on the first training batch, then kept
