"""Pruning, quantization, clustering and export of the student; artifacts reloaded in a fresh process."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import BACKEND, IS_TF_KERAS, is_tensorflow_backed, keras
from keras_kd.compression import (
    ConstantSparsity,
    MagnitudePruning,
    PolynomialDecay,
    export_saved_model,
    export_tflite,
    next_version,
    sparsity_of,
)
from keras_kd.compression.artifacts import output_quantization_step
from keras_kd.compression.magnitude_pruning import magnitude_mask
from keras_kd.compression.verify import outputs_in_fresh_process

RNG = np.random.default_rng(5)
tf_keras_only = pytest.mark.skipif(not IS_TF_KERAS, reason="TF-MOT runs on the tf_keras engine")
keras3_only = pytest.mark.skipif(IS_TF_KERAS, reason="Keras 3 feature")
tensorflow_only = pytest.mark.skipif(not is_tensorflow_backed(), reason="SavedModel and TFLite need TensorFlow")


@pytest.fixture
def digits_pair():
    (x, y), _ = keras_kd.datasets.load("digits")
    x, y = x[:256], y[:256]
    teacher = keras_kd.models.build_model("digits", "teacher", x.shape[1:], 10)
    teacher.compile("adam", keras_kd.losses.LogitsCrossentropy())
    teacher.fit(x, y, epochs=3, verbose=0)
    student = keras_kd.models.build_model("digits", "student", x.shape[1:], 10)
    return x, y, teacher, student


# Schedules and masks -------------------------------------------------------------------


def test_schedules_follow_tfmot_semantics():
    constant = ConstantSparsity(0.5, begin_step=10, end_step=30, frequency=10)
    assert [constant.should_prune(s) for s in (0, 10, 15, 20, 30, 40)] == [False, True, False, True, True, False]
    polynomial = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=10)
    assert polynomial.sparsity(0) == 0.0 and polynomial.sparsity(100) == pytest.approx(0.8)
    assert polynomial.sparsity(50) == pytest.approx(0.8 - 0.8 * 0.5**3)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval(sparsity):
    with pytest.raises(ValueError, match="target_sparsity"):
        ConstantSparsity(sparsity)


def test_magnitude_mask_keeps_the_largest():
    weights = np.array([[0.1, -3.0], [2.0, -0.2]], "float32")
    np.testing.assert_array_equal(magnitude_mask(weights, 0.5), [[0, 1], [1, 0]])


# Keras 3 pruning during distillation --------------------------------------------------


def test_magnitude_pruning_during_distillation_reaches_the_sparsity(digits_pair):
    x, y, teacher, student = digits_pair
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=4.0)
    pruning = MagnitudePruning(ConstantSparsity(0.75, begin_step=0, frequency=4))
    history = distiller.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[pruning]).history
    report = sparsity_of(student)
    assert report["overall"] == pytest.approx(0.75, abs=0.01)
    for name, value in report.items():
        assert value == pytest.approx(0.75, abs=0.02), name
    assert history["sparsity"][-1] == pytest.approx(report["overall"])
    # Weights of the teacher are untouched.
    assert sparsity_of(teacher)["overall"] < 0.01


def test_magnitude_pruning_of_unknown_layers():
    model = keras_kd.models.build_model("digits", "student", (8, 8, 1), 10)
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="Cannot prune"):
        model.fit(
            np.zeros((4, 8, 8, 1)),
            np.zeros((4, 10)),
            verbose=0,
            callbacks=[MagnitudePruning(ConstantSparsity(0.5), layer_names=["nope"])],
        )


@keras3_only
def test_post_training_quantization_keeps_outputs_close(digits_pair):
    from keras_kd.compression.post_training import quantize_post_training

    x, _, teacher, _ = digits_pair
    quantized = quantize_post_training(teacher, "int8")
    assert any("int8" in str(w.dtype) for w in quantized.weights)
    reference = np.asarray(teacher(x))
    difference = np.abs(np.asarray(quantized(x)) - reference).max()
    assert difference < 0.1 * np.abs(reference).max()
    assert np.mean(np.argmax(np.asarray(quantized(x)), -1) == np.argmax(reference, -1)) > 0.95


@keras3_only
def test_tfmot_on_keras3_says_how_to_switch(digits_pair):
    from keras_kd.compression import tfmot

    *_, student = digits_pair
    with pytest.raises(RuntimeError, match="TF_USE_LEGACY_KERAS=1"):
        tfmot.prune(student, 0.5)
    assert "tensorflow_model_optimization" not in sys.modules


# TF-MOT on tf_keras -----------------------------------------------------------------------


@tf_keras_only
def test_tfmot_pruning_during_distillation_then_strip(digits_pair):
    from keras_kd.compression import tfmot

    x, y, teacher, student = digits_pair
    pruned = tfmot.prune(student, 0.6, schedule="polynomial", begin_step=0, end_step=8, frequency=2)
    distiller = keras_kd.Distiller(student=pruned, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.1, temperature=4.0)
    distiller.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=tfmot.pruning_callbacks())
    stripped = tfmot.strip(distiller.student)
    assert not any(type(layer).__name__ == "PruneLowMagnitude" for layer in stripped.layers)
    assert sparsity_of(stripped)["overall"] == pytest.approx(0.6, abs=0.01)


@tf_keras_only
def test_tfmot_qat_and_clustering_distil(digits_pair):
    from keras_kd.compression import tfmot

    x, y, teacher, student = digits_pair
    for model in (
        tfmot.quantize(student),
        tfmot.cluster(keras_kd.models.build_model("digits", "student", x.shape[1:], 10), number_of_clusters=4),
    ):
        before = [w.copy() for w in model.get_weights()]
        distiller = keras_kd.Distiller(student=model, teacher=teacher)
        distiller.compile(optimizer="adam", alpha=0.1, temperature=4.0)
        distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    clustered = tfmot.strip(model)
    kernel = clustered.get_layer("dense_0").kernel.numpy()
    assert len(np.unique(kernel)) <= 4


@tf_keras_only
def test_tfmot_bad_input():
    from keras_kd.compression import tfmot

    model = keras_kd.models.build_model("digits", "student", (8, 8, 1), 10)
    with pytest.raises(ValueError, match="number_of_clusters"):
        tfmot.cluster(model, 1)
    with pytest.raises(ValueError, match="target_sparsity"):
        tfmot.prune(model, 1.0)


# Export ---------------------------------------------------------------------------------


@tensorflow_only
def test_saved_model_in_tf_serving_layout_reloads_in_a_fresh_process(tmp_path, digits_pair):
    x, *_, student = digits_pair
    base = tmp_path / "serving"
    first = export_saved_model(student, str(base), "digits")
    second = export_saved_model(student, str(base), "digits")
    assert first.endswith(os.path.join("digits", "1")) and second.endswith(os.path.join("digits", "2"))
    assert sorted(os.listdir(base / "digits")) == ["1", "2"]  # no staging folder left
    assert next_version(str(base / "digits")) == 3
    expected = np.asarray(student(x[:32], training=False))
    np.testing.assert_allclose(outputs_in_fresh_process("saved_model", first, x[:32]), expected, rtol=1e-5, atol=1e-5)
    np.save(tmp_path / "x.npy", x[:32])
    cli = subprocess.run(
        [
            _saved_model_cli(),
            "run",
            "--dir",
            first,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"inputs={tmp_path / 'x.npy'}",
            "--outdir",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "cli" / "logits.npy"), expected, rtol=1e-5, atol=1e-5)


def _saved_model_cli():
    """TensorFlow's `saved_model_cli` of this interpreter's environment (active or not)."""
    beside = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return beside if os.path.exists(beside) else "saved_model_cli"


@tensorflow_only
def test_export_refuses_bad_targets(tmp_path, digits_pair):
    *_, teacher, student = digits_pair
    export_saved_model(student, str(tmp_path), "m", version=3)
    with pytest.raises(ValueError, match="already exists"):
        export_saved_model(student, str(tmp_path), "m", version=3)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        export_saved_model(student, str(tmp_path / "file"), "m")
    with pytest.raises(ValueError, match="student alone"):
        export_saved_model(keras_kd.Distiller(student=student, teacher=teacher), str(tmp_path), "d")
    with pytest.raises(ValueError, match="representative data has shape"):
        export_tflite(student, str(tmp_path / "s.tflite"), "int8", representative_data=np.zeros((4, 28, 28, 1)))
    assert not (tmp_path / "s.tflite").exists()


# Float files: a relative error. int8 files: steps of the output's int8 scale (read from the file):
# rounding in each layer adds up (1.3 steps measured on the digits student, 5 on the compress
# job's barely trained one); a wrong scale or zero point, or a calibration on
# data unlike the inputs, costs tens of steps.
INT8_STEPS = 8


@tensorflow_only
@pytest.mark.parametrize(
    "mode, int8_io, tolerance",
    [
        ("float32", False, 1e-5),
        ("float16", False, 1e-3),
        ("dynamic", False, 1e-2),
        ("int8", False, None),
        ("int8", True, None),
    ],
)
def test_tflite_reloads_in_a_fresh_process(tmp_path, digits_pair, mode, int8_io, tolerance):
    x, *_, student = digits_pair
    path = str(tmp_path / f"student_{mode}.tflite")
    size = export_tflite(student, path, mode, representative_data=x, int8_io=int8_io)
    assert size == os.path.getsize(path)
    expected = np.asarray(student(x[:64], training=False))
    got = outputs_in_fresh_process("tflite", path, x[:64])
    step = output_quantization_step(path)
    if mode == "int8":
        error = np.abs(got - expected).max()
        assert step is not None and error <= INT8_STEPS * step, (error, step)
    else:
        assert step is None
        assert np.abs(got - expected).max() <= tolerance * np.abs(expected).max() + 1e-6
    assert np.mean(np.argmax(got, -1) == np.argmax(expected, -1)) >= 0.95


@tf_keras_only
def test_tfmot_names_a_layer_it_cannot_wrap_and_can_skip_it():
    from keras_kd.compression import tfmot

    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.scale

    inputs = keras.Input((8,))
    x = Scale(name="scale")(keras.layers.Dense(8, name="hidden")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    with pytest.raises(ValueError, match=r"\('scale', 'Scale'\).*skip_unsupported=True"):
        tfmot.prune(model, 0.5)
    pruned = tfmot.prune(model, 0.5, skip_unsupported=True)
    kinds = {layer.name: type(layer).__name__ for layer in pruned.layers}
    assert kinds["scale"] == "Scale" and kinds["prune_low_magnitude_logits"] == "PruneLowMagnitude"


@pytest.mark.skipif(is_tensorflow_backed(), reason="the TensorFlow backend exports")
def test_export_on_another_backend_says_how_and_writes_nothing(tmp_path, digits_pair):
    *_, student = digits_pair
    with pytest.raises(RuntimeError, match=f"needs the TensorFlow backend; the active backend is {BACKEND}"):
        export_saved_model(student, str(tmp_path / "models"), "m")
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=tensorflow"):
        export_tflite(student, str(tmp_path / "s.tflite"))
    assert list(tmp_path.iterdir()) == []


@tf_keras_only
def test_compress_builds_one_teacher_cache_for_its_later_stages(tmp_path, monkeypatch):
    """Prune, cluster and QAT distil on the same transfer set: one cache, not one per stage."""
    from keras_kd.jobs.compress import run_compress
    from keras_kd.jobs.config import CompressConfig
    from keras_kd.teacher.cache import TeacherCache

    built = []
    original = TeacherCache.build.__func__
    monkeypatch.setattr(
        TeacherCache, "build", classmethod(lambda cls, *a, **k: built.append(1) or original(cls, *a, **k))
    )
    config = CompressConfig(
        teacher_epochs=2, student_epochs=1, prune_epochs=1, clusters=4, qat=True, teacher_cache=True, verbose=0
    )
    rows, _ = run_compress(config, str(tmp_path))
    assert [row.name for row in rows][-3:] == [
        "student_kd_pruned_clustered",
        "student_kd_pruned_qat",
        "student_kd_pruned_qat_int8",
    ]
    assert len(built) == 2  # the distilled student's, then the later stages' one
