"""Round trips: the distiller and the student alone, loaded and checked for the same outputs."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import IS_TF_KERAS, keras
from keras_kd.distiller import load_distiller
from tests.conftest import make_mlp

FORMATS = ["model.keras"] + (["saved_model"] if IS_TF_KERAS else [])


def trained_distiller(data, teacher):
    x, y = data
    distiller = keras_kd.Distiller(student=make_mlp(4, name="student"), teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.01),
        metrics=["accuracy"],
        distillation_loss_fn="mse",
        alpha=0.25,
        temperature=5.0,
    )
    distiller.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    return distiller


def test_config_round_trip(teacher, student):
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    clone = keras_kd.Distiller.from_config(distiller.get_config())
    assert [type(layer) for layer in clone.student.layers] == [type(layer) for layer in student.layers]
    assert clone.teacher.count_params() == teacher.count_params()
    assert clone.teacher.trainable is False


@pytest.mark.parametrize("name", FORMATS)
def test_distiller_round_trip_resumes_identically(tmp_path, data, teacher, name):
    x, y = data
    distiller = trained_distiller(data, teacher)
    path = str(tmp_path / name)
    distiller.save(path)
    loaded = load_distiller(path)
    assert isinstance(loaded, keras_kd.Distiller)
    assert (loaded.alpha, loaded.temperature) == (0.25, 5.0)
    assert isinstance(loaded.distillation_loss_fn, keras_kd.losses.SoftTargetLoss)
    np.testing.assert_array_equal(distiller.predict(x, verbose=0), loaded.predict(x, verbose=0))
    # Training resumes where it stopped: optimizer state included, same weights after.
    for model in (distiller, loaded):
        model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_allclose(distiller.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    results = [m.evaluate(x, y, verbose=0, return_dict=True) for m in (distiller, loaded)]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-6)


def test_student_and_distiller_load_in_another_process(tmp_path, data, teacher):
    """A fresh process loads the student's file with Keras alone, and the distiller's with
    `keras_kd.load_distiller` and nothing else imported first, with the same outputs."""
    x, _ = data
    distiller = trained_distiller(data, teacher)
    path, whole = str(tmp_path / "student.keras"), str(tmp_path / "distiller.keras")
    distiller.student.save(path)
    distiller.save(whole)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np\n"
        "import keras_kd\n"
        "distiller = keras_kd.load_distiller(sys.argv[4])\n"
        "from keras_kd.backend import keras, to_numpy\n"
        "model = keras.models.load_model(sys.argv[1])\n"
        "np.save(sys.argv[3], to_numpy(model(np.load(sys.argv[2]), training=False)))\n"
        "np.save(sys.argv[5], distiller.predict(np.load(sys.argv[2]), verbose=0))\n"
        "print(type(distiller).__name__, distiller.alpha, distiller.temperature)\n"
    )
    out, out_whole = tmp_path / "out.npy", tmp_path / "out_whole.npy"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    result = subprocess.run(
        [sys.executable, "-c", script, path, str(tmp_path / "x.npy"), str(out), whole, str(out_whole)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["Distiller", "0.25", "5.0"]
    np.testing.assert_allclose(np.load(out), distiller.student.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.load(out_whole), distiller.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    # The student's file holds no teacher: far fewer weights than the distiller.
    assert keras.models.load_model(path).count_params() == distiller.student.count_params()


@pytest.mark.parametrize("name", FORMATS)
def test_feature_distiller_with_several_teachers_round_trips(tmp_path, name):
    from tests.test_distiller_methods import convnet

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    y = np.arange(32) % 3
    distiller = keras_kd.Distiller(
        student=convnet(4, "student"),
        teacher=[convnet(8, "t1"), convnet(6, "t2")],
        teacher_weights=[2, 1],
        features=[keras_kd.FeatureDistillation("fitnets", "conv", "conv", weight=0.5, name="hint")],
    )
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.01),
        distillation_loss_fn={"name": "dkd", "non_target_weight": 2.0},
        alpha=0.5,
        temperature=2.0,
    )
    distiller.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    path = str(tmp_path / name)
    distiller.save(path)
    loaded = load_distiller(path)
    assert len(loaded.teachers) == 2 and loaded.teacher_weights == pytest.approx([2 / 3, 1 / 3])
    assert isinstance(loaded.distillation_loss_fn, keras_kd.losses.DKDLoss)
    np.testing.assert_allclose(
        np.asarray(loaded.adapters[0].get_weights()[0]), np.asarray(distiller.adapters[0].get_weights()[0])
    )
    for model in (distiller, loaded):
        model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_allclose(distiller.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
