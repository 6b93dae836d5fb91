"""A bfloat16 teacher pass: the loss within the stated tolerance of float32, the copy in step with the teacher."""

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import keras
from keras_kd.teacher.precision import BFLOAT16_LOSS_RTOL, TeacherPass
from tests.conftest import make_mlp


def _distillation_loss(distiller, x, y):
    distiller.fit(x, y, epochs=1, batch_size=len(x), verbose=0)  # one step: builds, refreshes the copy
    return {
        key: float(value)
        for key, value in distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True).items()
    }


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_bfloat16_teacher_keeps_the_distillation_loss_within_tolerance(data, teacher, temperature):
    x, y = data
    losses = {}
    for dtype in (None, "bfloat16"):
        student = make_mlp(4, name="student")
        keras.utils.set_random_seed(3)
        student.set_weights([np.full_like(w, 0.1) for w in student.get_weights()])
        distiller = keras_kd.Distiller(student=student, teacher=teacher, teacher_dtype=dtype)
        distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=0.0, temperature=temperature)
        losses[dtype] = _distillation_loss(distiller, x, y)["distillation_loss"]
    relative = abs(losses["bfloat16"] - losses[None]) / losses[None]
    assert relative < BFLOAT16_LOSS_RTOL, (losses, relative)
    assert losses["bfloat16"] != losses[None]  # the bfloat16 copy really ran


def test_the_copy_is_bfloat16_untracked_and_follows_the_teacher(data, teacher, student):
    x, _ = data
    distiller = keras_kd.Distiller(student=student, teacher=teacher, teacher_dtype="bfloat16")
    copy = distiller._teacher_pass.models[0]
    kernels = [w for w in copy.weights if "kernel" in (getattr(w, "path", None) or w.name)]
    assert copy is not teacher and kernels and all("bfloat16" in str(w.dtype) for w in kernels)  # tf_keras keeps
    # batch normalization's statistics in float32
    tracked = {id(w) for w in distiller.weights}
    assert not any(id(w) in tracked for w in copy.weights)  # not trained, not saved with the Distiller
    assert all(id(w) in tracked for w in teacher.weights)
    logits = np.asarray(distiller._teacher_pass(0, x))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, np.asarray(teacher(x, training=False)), atol=0.1, rtol=0.05)
    distiller._teacher_pass.sync(distiller)
    distiller.train_function = "compiled"
    distiller._teacher_pass.sync(distiller)
    assert distiller.train_function == "compiled"  # nothing changed: the compiled step is kept
    teacher.set_weights([w * 0.5 for w in teacher.get_weights()])  # e.g. weights loaded after construction
    distiller._teacher_pass.sync(distiller)
    assert distiller.train_function is None  # rebuilt on the next fit (JAX holds the copy's weights as constants)
    np.testing.assert_allclose(
        np.asarray(distiller._teacher_pass(0, x)), np.asarray(teacher(x, training=False)), atol=0.1, rtol=0.05
    )


def test_config_round_trip_and_refusals(teacher, student):
    distiller = keras_kd.Distiller(student=student, teacher=teacher, teacher_dtype="bfloat16")
    restored = keras_kd.Distiller.from_config(distiller.get_config())
    assert restored.teacher_dtype == "bfloat16" and restored._teacher_pass.dtype == "bfloat16"
    assert "teacher_dtype" not in keras_kd.Distiller(student=student, teacher=teacher).get_config()
    with pytest.raises(ValueError, match="teacher_dtype` must be one of"):
        keras_kd.Distiller(student=student, teacher=teacher, teacher_dtype="int8")
    assert TeacherPass([teacher], "float32").models == [teacher]
