"""`keras-kd compress` end to end on digits (small): stages, exports, and fresh-process checks."""

import json
import os

import pytest

from keras_kd.backend import BACKEND, IS_TF_KERAS, is_tensorflow_backed
from tests.test_cli import run_cli

QUICK = ["--teacher_epochs=2", "--student_epochs=2", "--prune_epochs=2", "--sparsity=0.5", "--verbose=0"]


@pytest.mark.skipif(not is_tensorflow_backed(), reason="compress exports SavedModels and TFLite: TensorFlow")
def test_compress_on_digits(tmp_path):
    out = tmp_path / "run"
    extra = ["--clusters=4", "--qat"] if IS_TF_KERAS else []
    result = run_cli("compress", f"--output_dir={out}", *QUICK, *extra, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
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
    for name, difference in checks.items():
        limit = 0.5 if name.endswith("int8") else 1e-4
        assert difference <= limit, (name, difference)
    serving = out / report["metadata"]["serving_export"]
    assert serving.name == "1" and (serving / "saved_model.pb").is_file()


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
