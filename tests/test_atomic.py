"""Outputs are written atomically: a process killed during a write leaves the earlier version whole and loadable."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from keras_kd import atomic
from keras_kd.backend import is_tensorflow_backed, keras

WORKER = os.path.join(os.path.dirname(__file__), "atomic_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF_ONLY = pytest.mark.skipif(not is_tensorflow_backed(), reason="TFLite and SavedModel exports need TensorFlow")


def _killed_during_second_write(kind, folder):
    environment = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, WORKER, kind, str(folder)], env=environment, capture_output=True, text=True, timeout=240
    )
    assert "version 1 written" in result.stdout, result.stderr[-3000:]
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr[-3000:]
    return folder


def _model_seed_1():
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def test_json_killed_mid_write(tmp_path):
    folder = _killed_during_second_write("json", tmp_path)
    with open(folder / "out.json") as handle:
        assert json.load(handle)["version"] == 1
    atomic.write_json(folder / "out.json", {"version": 3})  # the leftover partial file is no obstacle
    with open(folder / "out.json") as handle:
        assert json.load(handle) == {"version": 3}


def test_report_killed_mid_write(tmp_path):
    folder = _killed_during_second_write("report", tmp_path)
    with open(folder / "report.json") as handle:
        report = json.load(handle)
    assert report["metadata"]["version"] == 1 and report["models"][0]["name"] == "model_v1"
    assert "model_v1" in (folder / "report.md").read_text()
    assert (folder / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keras_model_killed_mid_save(tmp_path):
    folder = _killed_during_second_write("model", tmp_path)
    model = keras.models.load_model(folder / "out.keras")
    for got, want in zip(model.get_weights(), _model_seed_1().get_weights()):
        np.testing.assert_array_equal(got, want)


def test_teacher_cache_killed_mid_save(tmp_path):
    from keras_kd.teacher.cache import TeacherCache

    folder = _killed_during_second_write("cache", tmp_path)
    cache = TeacherCache.load(str(folder / "out.npz"))
    assert cache.input_fingerprint == "v1" and np.all(cache.logits == 1.0)


@TF_ONLY
def test_tflite_killed_mid_write(tmp_path):
    from keras_kd.compression.artifacts import TFLiteRunner

    folder = _killed_during_second_write("tflite", tmp_path)
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(TFLiteRunner(str(folder / "out.tflite"))(x), _model_seed_1()(x), rtol=1e-5)


@TF_ONLY
def test_saved_model_version_killed_mid_export(tmp_path):
    from keras_kd.compression import next_version
    from keras_kd.compression.artifacts import SavedModelRunner

    folder = _killed_during_second_write("saved_model", tmp_path)
    versions = sorted(name for name in os.listdir(folder / "student") if name.isdigit())
    assert versions == ["1"]  # TF Serving never sees a half-written version 2
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(SavedModelRunner(str(folder / "student" / "1"))(x), _model_seed_1()(x), rtol=1e-5)
    assert next_version(str(folder / "student")) == 2


def test_folder_killed_between_its_renames(tmp_path):
    folder = _killed_during_second_write("folder", tmp_path)
    # Killed after the old folder was moved aside, before the new one took its place: put it back.
    assert not (folder / "tree").exists()
    assert atomic.restore_folder(folder / "tree")
    for index in range(3):
        with open(folder / "tree" / f"part{index}.json") as handle:
            assert json.load(handle) == {"version": 1, "part": index}


def test_a_writer_that_fails_leaves_the_old_file(tmp_path):
    path = tmp_path / "report.json"
    atomic.write_json(path, {"version": 1})
    with pytest.raises(TypeError):
        atomic.write_json(path, {"version": object()})  # JSON refuses it: nothing is written
    with pytest.raises(RuntimeError):
        with atomic.replaced_file(path) as temporary:
            with open(temporary, "w") as handle:
                handle.write('{"vers')
            raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temporary file left behind


def test_replaced_folder_swaps_a_whole_folder(tmp_path):
    target = tmp_path / "export"
    for version in (1, 2):
        with atomic.replaced_folder(target) as staging:
            (open(os.path.join(staging, "v.txt"), "w")).write(str(version))
    assert (target / "v.txt").read_text() == "2"
    assert sorted(os.listdir(tmp_path)) == ["export"]
