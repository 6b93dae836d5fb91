"""Translation: a keras-hub BART teacher distilled into a smaller BART, token by token and sequence-level.

The parallel corpus comes from a package on PyPI, not from a download: `num2words` writes the same
number in English and in French ("ninety-seven" and "quatre-vingt-dix-sept"), a translation with
its own word order and vocabulary, tokenized here by words. The models are keras-hub's
`BartSeq2SeqLM` in small configurations built in the test (no weights are downloaded).

What a user relies on: the loss of a distillation step is the KL of the two models' next-token
distributions over the real decoder tokens only (`decoder_padding_mask`), computed here in float64
NumPy; a student that never sees a label learns to translate from the teacher's distributions
alone; and `teacher_translations` gives the teacher's own greedy translations, checked against a
decoding loop written here with the teacher's full forward pass.
"""

import importlib.util

import numpy as np
import pytest

from keras_kd import Distiller
from keras_kd.backend import IS_TF_KERAS, keras, to_numpy
from tests import reference

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("keras_hub") is None or importlib.util.find_spec("num2words") is None,
        reason='needs keras-hub and num2words: pip install -e ".[test]"',
    ),
    pytest.mark.skipif(IS_TF_KERAS, reason="keras-hub runs on Keras 3 only"),
]

PAD, START, STOP = 0, 1, 2


def words(text):
    """A number's words, hyphens kept as tokens (French joins "quatre-vingt-dix-sept" with them)."""
    return text.replace("-", " - ").replace(",", "").split()


def number_corpus(numbers):
    """`(sources, targets, vocabulary)`: each number's English words as the source, its French words
    as the target, as padded token ids (targets start with START; both end with STOP)."""
    from num2words import num2words

    pairs = [(words(num2words(int(n), lang="en")), words(num2words(int(n), lang="fr"))) for n in numbers]
    vocabulary = ["<pad>", "<s>", "</s>"] + sorted({word for pair in pairs for side in pair for word in side})
    index = {word: i for i, word in enumerate(vocabulary)}

    def padded(sentences, start):
        rows = [([START] if start else []) + [index[w] for w in sentence] + [STOP] for sentence in sentences]
        width = max(len(row) for row in rows)
        return np.array([row + [PAD] * (width - len(row)) for row in rows], "int32")

    source = padded([english for english, _ in pairs], start=False)
    target = padded([french for _, french in pairs], start=True)
    sources = {"encoder_token_ids": source, "encoder_padding_mask": (source != PAD).astype("int32")}
    return sources, target, vocabulary


def bart(vocabulary_size, layers, hidden, seed):
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=layers,
        num_heads=2,
        hidden_dim=hidden,
        intermediate_dim=2 * hidden,
        dropout=0.0,
        max_sequence_length=16,
    )
    return keras_hub.models.BartSeq2SeqLM(backbone=backbone, preprocessor=None)


def data(numbers):
    from keras_kd.data.sequence_level import translation_data

    sources, target, vocabulary = number_corpus(numbers)
    return (*translation_data(sources, target, target != PAD), vocabulary)


def test_a_distillation_step_compares_next_token_distributions_over_real_decoder_tokens():
    numbers = np.random.default_rng(0).choice(np.arange(1, 1000), 24, replace=False)
    x, y, weight, vocabulary = data(numbers)
    assert (weight == 0).any()  # translations of several lengths: padding to leave out
    teacher = bart(len(vocabulary), 1, 16, seed=1)
    student = bart(len(vocabulary), 1, 8, seed=2)
    teacher_logits, student_logits = to_numpy(teacher(x, training=False)), to_numpy(student(x, training=False))
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=0.4, temperature=2.0)
    history = distiller.fit(x, y, sample_weight=weight, batch_size=24, epochs=1, shuffle=False, verbose=0)
    real = x["decoder_padding_mask"] * weight  # the decoder's padding mask and the labels' weights
    expected_kd = reference.real_token_mean(reference.hinton_kd(teacher_logits, student_logits, 2.0), real)
    flat = student_logits.reshape(-1, student_logits.shape[-1])
    expected_ce = reference.real_token_mean(reference.crossentropy(y.reshape(-1), flat).reshape(y.shape), real)
    assert history.history["distillation_loss"][0] == pytest.approx(expected_kd, rel=1e-4)
    assert history.history["student_loss"][0] == pytest.approx(expected_ce, rel=1e-4)
    everywhere = reference.hinton_kd(teacher_logits, student_logits, 2.0).mean()
    assert expected_kd != pytest.approx(everywhere, rel=1e-3)  # padding would have moved it


def token_accuracy(model, x, y, weight):
    predicted = np.argmax(to_numpy(model(x, training=False)), axis=-1)
    return float(((predicted == y) * weight).sum() / weight.sum())


def test_a_student_that_never_sees_a_label_learns_to_translate_from_the_teacher():
    numbers = np.random.default_rng(1).permutation(np.arange(1, 400))
    x, y, weight, vocabulary = data(numbers)
    train, held_out = slice(0, 320), slice(320, None)
    part = lambda values, rows: {k: v[rows] for k, v in values.items()} if isinstance(values, dict) else values[rows]  # noqa: E731
    teacher = bart(len(vocabulary), 1, 32, seed=3)
    teacher.compile(optimizer=keras.optimizers.Adam(5e-3), loss=keras.losses.SparseCategoricalCrossentropy(True))
    teacher.fit(part(x, train), y[train], sample_weight=weight[train], batch_size=32, epochs=25, verbose=0)
    teacher_accuracy = token_accuracy(teacher, part(x, held_out), y[held_out], weight[held_out])
    assert teacher_accuracy > 0.9, teacher_accuracy
    student = bart(len(vocabulary), 1, 16, seed=4)
    before = token_accuracy(student, part(x, held_out), y[held_out], weight[held_out])
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(5e-3), alpha=0.0, temperature=1.0)
    # alpha 0 and no labels at all: every signal the student gets is the teacher's distributions, over the
    # real tokens of the decoder_padding_mask (Keras drops a sample_weight given without labels).
    distiller.fit(part(x, train), batch_size=32, epochs=15, verbose=0)
    after = token_accuracy(student, part(x, held_out), y[held_out], weight[held_out])
    # Chance is 1 token in len(vocabulary) (about 1 in 60); an untrained student gets none right.
    assert after > 0.5 and after > before + 0.4, (before, after, teacher_accuracy)


def greedy_by_full_passes(teacher, sources, length):
    """The teacher's greedy translation, one full forward pass per token (no cache, no sampler)."""
    rows = len(sources["encoder_token_ids"])
    ids = np.zeros((rows, length), "int32")
    ids[:, 0] = START
    done = np.zeros(rows, bool)
    for position in range(1, length):
        mask = (np.arange(length)[None, :] < position).astype("int32").repeat(rows, axis=0)
        logits = to_numpy(teacher({**sources, "decoder_token_ids": ids, "decoder_padding_mask": mask}, training=False))
        ids[:, position] = np.where(done, STOP, np.argmax(logits[:, position - 1], axis=-1))
        done |= ids[:, position] == STOP
    return ids


def test_teacher_translations_are_the_teachers_greedy_translations_as_training_data():
    from keras_kd.data.sequence_level import teacher_translations

    numbers = np.random.default_rng(2).choice(np.arange(1, 1000), 10, replace=False)
    sources, target, vocabulary = number_corpus(numbers)
    teacher = bart(len(vocabulary), 1, 16, seed=5)
    x, y, weight = teacher_translations(teacher, sources, 9, START, stop_token_ids=[STOP], batch_size=4)
    expected = greedy_by_full_passes(teacher, sources, 9)
    np.testing.assert_array_equal(x["decoder_token_ids"], expected[:, :-1])
    real = np.concatenate([x["decoder_padding_mask"], weight[:, -1:]], axis=1).astype(bool)
    np.testing.assert_array_equal(np.where(real[:, 1:], y, -1), np.where(real[:, 1:], expected[:, 1:], -1))
    # The mask runs to the first stop token, included, and no further.
    for row, ids in zip(real, expected):
        stops = np.flatnonzero(ids == STOP)
        assert row.sum() == (stops[0] + 1 if len(stops) else len(ids))
    np.testing.assert_array_equal(x["encoder_token_ids"], sources["encoder_token_ids"])


def test_a_bart_student_takes_the_steps_it_would_take_alone():
    # Two BARTs name their variables alike (`token_embedding/embeddings`, ...). On PyTorch, Keras keys a
    # model's parameters by path: the student's dropped out of the distiller's, `zero_grad` missed them,
    # and each step added the earlier steps' gradients to its own (measured: a second step that moved a
    # weight by 0.35 where a step of its own moved it by 0.23). With alpha 1 and no padding, a distiller's
    # steps are the student's plain-Keras steps, one for one.
    rng = np.random.default_rng(7)
    x = {
        "encoder_token_ids": rng.integers(3, 20, (24, 6)).astype("int32"),
        "encoder_padding_mask": np.ones((24, 6), "int32"),
        "decoder_token_ids": rng.integers(3, 20, (24, 5)).astype("int32"),
        "decoder_padding_mask": np.ones((24, 5), "int32"),
    }
    y = rng.integers(3, 20, (24, 5))
    student, teacher = bart(20, 1, 8, seed=1), bart(20, 1, 16, seed=2)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5), alpha=1.0)
    distiller.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 3 steps
    alone = bart(20, 1, 8, seed=1)
    alone.compile(keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    alone.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(student.weights, alone.weights):
        np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=1e-4, atol=1e-5, err_msg=ours.path)
