"""A run killed with SIGKILL (mid-epoch, or while writing its backup) and rerun ends with the weights of an
uninterrupted run: teacher cache, alpha/T schedule and pruning included (tests/resume_worker.py)."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import keras_kd
from keras_kd.backend import IS_TF_KERAS, keras
from keras_kd.training import resume
from tests.conftest import make_mlp

WORKER = os.path.join(os.path.dirname(__file__), "resume_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(output_dir, *arguments):
    environment = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, WORKER, str(output_dir), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _weights(output_dir):
    with np.load(os.path.join(output_dir, "result.npz")) as data:
        return [data[f"w{i}"] for i in range(len(data.files))]


def test_killed_twice_and_rerun_equals_an_uninterrupted_run(tmp_path):
    reference = _run(tmp_path / "reference", "--no-backup")
    assert reference.returncode == 0, reference.stderr[-3000:]
    interrupted = tmp_path / "interrupted"
    # 1: killed half-way through writing the second backup (end of epoch 1).
    first = _run(interrupted, "--kill-during-save", "2")
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not os.path.exists(interrupted / "result.npz")
    # 2: resumes from the first backup (epoch 1), then killed mid-epoch 3.
    second = _run(interrupted, "--kill-at", "3:2")
    assert second.returncode == -signal.SIGKILL, second.stderr[-3000:]
    # 3: resumes from the backup of epoch 2's end and completes.
    third = _run(interrupted)
    assert third.returncode == 0, third.stderr[-3000:]
    with open(interrupted / "result.json") as handle:
        assert json.load(handle)["epochs_run"] == [3, 4, 5]
    expected, resumed = _weights(tmp_path / "reference"), _weights(interrupted)
    assert len(expected) == len(resumed)
    for want, got in zip(expected, resumed):
        np.testing.assert_array_equal(got, want)
    assert float(np.mean(resumed[0] == 0)) >= 0.49  # pruning went on after the resume
    # The backup is deleted when fit completes (tf_keras leaves its empty folders).
    assert not [files for _, _, files in os.walk(resume.backup_dir(interrupted)) if files]


def test_backup_and_restore_on_a_fresh_distiller(tmp_path, data, teacher):
    """keras.callbacks.BackupAndRestore as users write it: the Distiller is built when made."""
    x, y = data

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("crash")

    def distiller():
        model = keras_kd.Distiller(student=make_mlp(4), teacher=teacher)
        model.compile(optimizer="adam")
        return model

    assert distiller().built
    folder = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="crash"):
        distiller().fit(x, y, epochs=4, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(folder), Crash()])
    history = distiller().fit(x, y, epochs=4, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(folder)])
    assert history.epoch == [2, 3]


@pytest.mark.skipif(IS_TF_KERAS, reason="tf_keras's own callback writes an atomic TensorFlow checkpoint")
def test_a_torn_backup_is_never_loaded(tmp_path, data, teacher):
    """The state file names only complete weights files: a leftover partial file is ignored."""
    x, y = data
    folder = tmp_path / "run"
    model = keras_kd.Distiller(student=make_mlp(4), teacher=teacher)
    model.compile(optimizer="adam")
    callback = resume.backup_callback(folder, delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    backup = resume.backup_dir(folder)
    with open(os.path.join(backup, "state.json")) as handle:
        state = json.load(handle)
    assert state["epoch"] == 2 and os.path.exists(os.path.join(backup, state["weights"]))
    assert [n for n in os.listdir(backup) if n.endswith(".weights.h5")] == [state["weights"]]
    with open(os.path.join(backup, ".weights-000003.weights.h5.partial-x.weights.h5"), "wb") as handle:
        handle.write(b"torn")
    again = keras_kd.Distiller(student=make_mlp(4), teacher=teacher)
    again.compile(optimizer="adam")
    history = again.fit(x, y, epochs=3, verbose=0, callbacks=[resume.backup_callback(folder)])
    assert history.epoch == [2]
