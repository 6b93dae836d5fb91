"""`keras-kd compress` end to end on digits (small): stages, exports, fresh-process checks, and a
run killed in each stage that, rerun, ends with the artifacts of an uninterrupted run."""

import json
import os

import pytest

from keras_kd.backend import BACKEND, IS_TF_KERAS, is_tensorflow_backed
from keras_kd.compression.artifacts import output_quantization_step
from tests.test_cli import kill_in_stage, run_cli
from tests.test_compression import INT8_STEPS

QUICK = ["--teacher_epochs=2", "--student_epochs=2", "--prune_epochs=2", "--sparsity=0.5", "--verbose=0"]
# Clustering and quantization-aware training exist on tf_keras (TF-MOT).
EXTRA = ["--clusters=4", "--qat", "--qat_epochs=2"] if IS_TF_KERAS else []
needs_tensorflow = pytest.mark.skipif(
    not is_tensorflow_backed(), reason="compress exports SavedModels and TFLite: TensorFlow"
)


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    """One uninterrupted run, shared by the tests of its outputs and of resuming (session-scoped: with
    pytest-xdist another module's tests can run between the two, which would tear a module fixture down)."""
    out = tmp_path_factory.mktemp("compress") / "run"
    result = run_cli("compress", f"--output_dir={out}", *QUICK, *EXTRA, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@needs_tensorflow
@pytest.mark.xdist_group("compress_run")
def test_compress_on_digits(uninterrupted):
    out = uninterrupted
    report = json.loads((out / "report.json").read_text())
    rows = {row["name"]: row for row in report["models"]}
    expected = ["teacher", "student_scratch", "student_kd", "student_kd_pruned"]
    expected += (
        ["student_kd_pruned_clustered", "student_kd_pruned_qat", "student_kd_pruned_qat_int8"]
        if IS_TF_KERAS
        else ["student_kd_pruned_int8"]
    )
    assert list(rows) == expected
    pruned = rows["student_kd_pruned"]
    kernels = 64 * 16 + 16 * 10  # the digits student's kernels; biases are not pruned
    assert pruned["params"] - pruned["nonzero_params"] == pytest.approx(0.5 * kernels, abs=2)
    assert rows[expected[-1]]["nonzero_params"] <= pruned["nonzero_params"]  # sparsity preserved to the end
    assert rows[expected[-1]]["size_bytes"] < rows["student_kd"]["size_bytes"]
    assert pruned["gzip_bytes"] < rows["student_kd"]["gzip_bytes"]
    for row in report["models"]:
        path = out / "exports" / (f"{row['name']}.tflite" if row["artifact"].startswith("tflite") else "")
        assert row["artifact"] == "saved_model" or row["size_bytes"] == os.path.getsize(path)
    checks = report["metadata"]["fresh_process_max_abs_difference"]
    for name, difference in checks.items():  # int8: within INT8_STEPS of the file's output scale
        step = output_quantization_step(str(out / "exports" / f"{name}.tflite")) if name.endswith("int8") else None
        limit = INT8_STEPS * step if step else 1e-4
        assert difference <= limit, (name, difference, step)
    assert any(name.endswith("int8") for name in checks)
    serving = out / report["metadata"]["serving_export"]
    assert serving.name == "1" and (serving / "saved_model.pb").is_file()


# (the line that opens the stage, the epoch line at which the run is killed; None: at that line).
# Keras 3 resumes an epoch with the draws of an uninterrupted run (`keras_kd.training.resume`); tf_keras's
# shuffles and dropout come from stateful ops that no checkpoint keeps, so there the runs are
# killed as each stage opens, and the stages before it must be loaded, not trained again.
_MID_STAGE = None if IS_TF_KERAS else "Epoch 2/"
STAGE_KILLS = [
    ("[1/5] training the teacher", _MID_STAGE),
    ("[2/5] training the student from labels", _MID_STAGE),
    ("[3/5] distilling the student", _MID_STAGE),
    ("[4/5] pruning", _MID_STAGE),
]
if IS_TF_KERAS:
    STAGE_KILLS += [("clustering the pruned student", None), ("quantization-aware distillation", None)]
STAGE_KILLS += [("[5/5] exporting", None)]


@needs_tensorflow
@pytest.mark.xdist_group("compress_run")
def test_a_run_killed_in_each_stage_ends_with_the_uninterrupted_runs_artifacts(tmp_path, uninterrupted):
    out = tmp_path / "run"
    args = ["compress", f"--output_dir={out}", *QUICK[:-1], "--verbose=2", *EXTRA]
    logs = [kill_in_stage(args, stage, epoch) for stage, epoch in STAGE_KILLS]
    for log in logs[2:]:  # (killed as the teacher's training opened, the first run may have kept nothing yet)
        assert "resuming the run backed up in" in log
    assert "teacher: trained in an earlier run" in logs[2]  # killed in (or before) the teacher, then finished
    assert not (out / "report.json").exists()
    finished = run_cli(*args, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resuming the run backed up in" in finished.stdout
    assert "student_kd_pruned: trained in an earlier run" in finished.stdout
    assert not (out / "backup").exists()

    want = json.loads((uninterrupted / "report.json").read_text())["models"]
    got = json.loads((out / "report.json").read_text())["models"]
    assert [row["name"] for row in got] == [row["name"] for row in want]
    for mine, theirs in zip(got, want):
        # A SavedModel's size also counts the names of the functions the process traced before it.
        keys = ("params", "nonzero_params", "accuracy") + (("size_bytes",) if mine["artifact"] != "saved_model" else ())
        for key in keys:
            assert mine[key] == theirs[key], (mine["name"], key, mine[key], theirs[key])
    for name in sorted(os.listdir(uninterrupted / "exports")):
        if name.endswith(".tflite"):  # the same weights give the same file, byte for byte
            assert (out / "exports" / name).read_bytes() == (uninterrupted / "exports" / name).read_bytes(), name


def test_compress_refuses_bad_input(tmp_path):
    result = run_cli("compress", "--sparsity=1.0", f"--output_dir={tmp_path / 'x'}", timeout=120)
    assert result.returncode == 2 and "sparsity" in result.stderr
    result = run_cli("compress", "--clusters=1", f"--output_dir={tmp_path / 'x'}", timeout=120)
    assert result.returncode == 2 and "clusters" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(is_tensorflow_backed(), reason="the TensorFlow backend compresses")
def test_compress_on_another_backend_is_refused_before_training(tmp_path):
    result = run_cli("compress", f"--output_dir={tmp_path / 'x'}", *QUICK, timeout=120)
    assert result.returncode == 2 and f"the active backend is {BACKEND}" in result.stderr
    assert not (tmp_path / "x").exists()
