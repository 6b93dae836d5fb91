"""A teacher and a student of different vocabularies: ULD on each model's own token ids, positions
aligned from the first token; a vocabulary with padding rows compared on the ids both have; every
other difference refused at compile, naming what to do."""

import numpy as np
import pytest

from keras_kd import Distiller, TeacherCache
from keras_kd.backend import keras, to_numpy
from keras_kd.losses import ULDLoss, uld_loss
from tests import reference


def language_model(vocabulary, length, width, seed, sharpness=1.0):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((length,), dtype="int32", name="token_ids")
    mask = keras.Input((length,), dtype="int32", name="padding_mask")
    hidden = keras.layers.Embedding(vocabulary, width)(ids)
    hidden = keras.layers.Dense(width, activation="tanh")(hidden)
    logits = keras.layers.Rescaling(sharpness)(keras.layers.Dense(vocabulary)(hidden))
    return keras.Model({"token_ids": ids, "padding_mask": mask}, logits)


def tokenized(count, vocabulary, length, lengths):
    """Token ids of `count` texts cut into `lengths` tokens each (0 after: padding), and next-token labels."""
    rng = np.random.default_rng(vocabulary)
    padding = (np.arange(length)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(1, vocabulary, (count, length)).astype("int32") * padding
    return {"token_ids": ids, "padding_mask": padding}, np.roll(ids, -1, axis=1).astype("int64"), padding


def test_uld_is_the_l1_distance_of_sorted_probabilities_across_vocabularies():
    rng = np.random.default_rng(0)
    for teacher_shape, student_shape in (((4, 7), (4, 5)), ((2, 3, 6), (2, 3, 9)), ((3, 8), (3, 8))):
        t = rng.normal(scale=2.0, size=teacher_shape).astype("float32")
        s = rng.normal(scale=2.0, size=student_shape).astype("float32")
        for temperature in (1.0, 3.0):
            want = reference.uld(t, s, temperature)
            np.testing.assert_allclose(to_numpy(uld_loss(t, s, temperature)), want, rtol=1e-5, atol=1e-6)
    # Which token holds which probability does not matter: a permuted vocabulary gives the same
    # value, and the same distribution in another order gives 0.
    s = rng.normal(size=(4, 7)).astype("float32")
    permuted = s[:, rng.permutation(7)]
    np.testing.assert_allclose(to_numpy(uld_loss(t[:1].repeat(4, 0)[:, :7] * 0 + s, permuted)), 0.0, atol=1e-6)
    padded = np.concatenate([s, np.full((4, 3), -1e4, "float32")], axis=-1)  # 3 more tokens of no mass
    np.testing.assert_allclose(to_numpy(uld_loss(padded, s)), 0.0, atol=1e-6)
    assert ULDLoss().get_config()["name"] == "uld" and ULDLoss.from_config(ULDLoss(temperature=2.0).get_config())


def test_a_student_of_another_vocabulary_learns_from_the_teacher_with_uld_on_its_own_token_ids():
    """Teacher: 11 tokens, texts cut into 3 to 6 tokens; student: 7 tokens, the same texts into 2 to 5.
    The logged loss of a fit at learning rate 0 is ULD over positions 0..4 that are real for both
    models (float64); training lowers it. (The teacher is peaked, as trained ones are: where every
    sorted probability of a 7-token student lies above a flat 11-token teacher's, ULD is the
    teacher's mass beyond rank 7 twice over, whatever the student does, and its gradient 0.)"""
    count = 32
    text_lengths = np.random.default_rng(3).integers(3, 7, count)
    teacher_x, _, teacher_padding = tokenized(count, 11, 6, text_lengths)
    # mostly one token fewer, some texts more (positions real for the student alone weigh 0)
    student_lengths = np.where(np.arange(count) % 4 == 0, np.minimum(text_lengths + 1, 5), text_lengths - 1)
    student_x, y, student_padding = tokenized(count, 7, 5, student_lengths)
    teacher, student = language_model(11, 6, 16, seed=0, sharpness=40.0), language_model(7, 5, 8, seed=1)
    x = {"student_inputs": student_x, "teacher_inputs": teacher_x}
    t, s = to_numpy(teacher(teacher_x)), to_numpy(student(student_x))
    real = student_padding * teacher_padding[:, :5]
    assert (real != student_padding).any()  # the teacher's padding drops some of the student's tokens
    want = reference.real_token_mean(reference.uld(t[:, :5], s, 2.0), real)

    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), distillation_loss_fn="uld", alpha=0.0, temperature=2.0)
    history = distiller.fit(x, y, sample_weight=student_padding, epochs=1, batch_size=count, verbose=0).history
    assert history["distillation_loss"][0] == pytest.approx(want, rel=1e-4)
    np.testing.assert_allclose(to_numpy(distiller.predict(x, verbose=0)), s, rtol=1e-5, atol=1e-6)

    with pytest.raises(ValueError, match="drop `teacher_cache`"):
        distiller.fit(x, y, epochs=1, verbose=0, teacher_cache=TeacherCache.build(teacher, teacher_x))
    distiller.compile(optimizer=keras.optimizers.Adam(0.05), distillation_loss_fn="uld", alpha=0.0, temperature=2.0)
    history = distiller.fit(x, y, sample_weight=student_padding, epochs=15, batch_size=8, verbose=0).history
    after = reference.real_token_mean(reference.uld(t[:, :5], to_numpy(student(student_x)), 2.0), real)
    assert after < 0.8 * want, (want, after, history["distillation_loss"])


def test_a_vocabulary_with_padding_rows_is_compared_on_the_ids_both_have(capsys):
    """A teacher of 100 tokens, a student of 99 (one tokenizer, one padding row): the same token ids
    go to both and the loss is KD over the first 99 ids, said once."""
    x, y, padding = tokenized(16, 99, 6, np.full(16, 6))
    teacher, student = language_model(100, 6, 16, seed=0, sharpness=10.0), language_model(99, 6, 8, seed=1)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), distillation_loss_fn="kd", alpha=0.0, temperature=2.0)
    assert "compares the 99 ids they share" in capsys.readouterr().out
    t, s = to_numpy(teacher(x)), to_numpy(student(x))
    want = reference.real_token_mean(reference.hinton_kd(t[..., :99], s, 2.0), padding)
    history = distiller.fit(x, y, sample_weight=padding, epochs=1, batch_size=16, verbose=0).history
    assert history["distillation_loss"][0] == pytest.approx(want, rel=1e-4)


def test_other_vocabularies_are_refused_at_compile_naming_uld():
    teacher, student = language_model(11, 6, 16, seed=0), language_model(7, 6, 8, seed=1)
    distiller = Distiller(student=student, teacher=teacher)
    refused = r"vocabulary has 11 tokens but the student's has 7.*distillation_loss_fn='uld'"
    with pytest.raises(ValueError, match=refused):
        distiller.compile(optimizer="adam", distillation_loss_fn="kd")
    with pytest.raises(ValueError, match="teacher_agreement"):
        distiller.compile(optimizer="adam", distillation_loss_fn="uld", metrics=["teacher_agreement"])
    distiller.compile(optimizer="adam", distillation_loss_fn="uld")


def test_plain_array_inputs_of_two_lengths_evaluate_and_validate_by_uld_and_refuse_token_level_losses():
    """Models of one array input each (no padding mask): a student of 7 positions and 9 tokens, a
    teacher of 5 positions and 13 tokens. `evaluate` and `validation_data` give ULD over the first 5
    positions (float64); the teacher's outputs are not kept for such inputs (it runs live); KD on
    two tokenizations of one vocabulary size is refused at the first step, naming ULD."""

    def model(vocabulary, length, seed, sharpness):
        keras.utils.set_random_seed(seed)
        ids = keras.Input((length,), dtype="int32")
        hidden = keras.layers.Embedding(vocabulary, 8)(ids)
        return keras.Model(ids, keras.layers.Rescaling(sharpness)(keras.layers.Dense(vocabulary)(hidden)))

    rng = np.random.default_rng(2)
    teacher, student = model(13, 5, 0, 20.0), model(9, 7, 1, 1.0)
    x = {"student_inputs": rng.integers(0, 9, (24, 7)).astype("int32"), "teacher_inputs": rng.integers(0, 13, (24, 5))}
    y = rng.integers(0, 9, (24, 7))
    t, s = to_numpy(teacher(x["teacher_inputs"])), to_numpy(student(x["student_inputs"]))
    want = reference.uld(t, s[:, :5], 1.0).mean()
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), distillation_loss_fn="uld", alpha=0.0, temperature=1.0)
    result = distiller.evaluate(x, y, batch_size=24, verbose=0, return_dict=True)
    assert result["distillation_loss"] == pytest.approx(want, rel=1e-4)
    history = distiller.fit(x, y, batch_size=24, epochs=1, verbose=0, validation_data=(x, y)).history
    assert history["val_distillation_loss"][0] == pytest.approx(want, rel=1e-4)
    assert history["distillation_loss"][0] == pytest.approx(want, rel=1e-4)

    same_size = Distiller(student=model(13, 5, 1, 1.0), teacher=teacher)  # another tokenizer of 13 ids
    same_size.compile(optimizer="sgd", distillation_loss_fn="kd")
    x = {"student_inputs": x["teacher_inputs"][::-1], "teacher_inputs": x["teacher_inputs"]}
    with pytest.raises(ValueError, match="compares the distributions id by id: distil with distillation_loss_fn='uld'"):
        same_size.fit(x, y[:, :5], epochs=1, verbose=0)
