"""`keras_kd.tune` and `keras-kd tune`: both searches run, only validation data scores them, best.yaml reruns."""

import json
import os

import numpy as np
import pytest

from tests.test_cli import run_cli

pytest.importorskip("keras_tuner")
pytestmark = pytest.mark.filterwarnings("ignore:.*(currentThread|getName).*:DeprecationWarning")  # KerasTuner's

TINY = ["--max_trials=2", "--teacher_epochs=1", "--student_epochs=1", "--verbose=0"]


def test_tune_scores_on_validation_only_and_writes_a_usable_best_yaml(tmp_path, monkeypatch):
    from keras_kd.jobs import tune as tuning
    from keras_kd.jobs.config import DistillConfig
    from keras_kd.jobs.data import load_split, split_data

    config = DistillConfig(dataset="digits", teacher_epochs=1, student_epochs=1, verbose=0)
    scored = []

    def spy(model, x, y, **kwargs):
        value = real_accuracy(model, x, y, **kwargs)
        scored.append((x, y, value))
        return value

    real_accuracy = tuning.accuracy
    monkeypatch.setattr(tuning, "accuracy", spy)
    result = tuning.tune(config, str(tmp_path), max_trials=2)

    # Every figure the search saw (4 trials and the teacher) is on the validation examples.
    (x_train, y_train), (x_test, _) = load_split(config)
    x_val, y_val = split_data(config, x_train, y_train).validation
    assert len(scored) == 5
    for x, y, _ in scored:
        assert np.array_equal(x, x_val) and np.array_equal(y, y_val)
        assert len(x) != len(x_test) or not np.array_equal(x, x_test)

    summary = json.loads((tmp_path / "tune.json").read_text())
    distilled, control = summary["distilled"]["trials"], summary["control"]["trials"]
    assert len(distilled) == 2 and len(control) == 2  # the control gets the same budget
    figures = [trial["val_accuracy"] for trial in distilled + control] + [summary["teacher_val_accuracy"]]
    assert sorted(figures) == sorted(value for _, _, value in scored)
    assert {"recipe", "alpha", "temperature", "learning_rate"} == set(distilled[0]["settings"])
    assert set(control[0]["settings"]) == {"learning_rate"}
    assert result["distilled_val_accuracy"] == max(trial["val_accuracy"] for trial in distilled)
    assert result["control_val_accuracy"] == max(trial["val_accuracy"] for trial in control)
    for project in ("distilled", "control"):
        assert os.path.isdir(os.path.join(summary["tuner_folder"], project))
    assert os.path.dirname(summary["tuner_folder"]) == str(tmp_path / "tuner")

    values = DistillConfig.read_yaml(str(tmp_path / "best.yaml"))
    best = DistillConfig.from_dict(values)
    best.validate()
    assert set(tuning.BEST_KEYS) <= set(values)
    assert {key: getattr(best, key) for key in result["best_settings"]} == result["best_settings"]
    assert best.recipe in tuning.SEARCHED_RECIPES and 0.0 <= best.alpha <= 0.9
    assert best.temperature in tuning.TEMPERATURES and best.teacher_epochs == 1
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary files left


def test_settings_that_cannot_be_tuned_are_refused_before_training(tmp_path, monkeypatch):
    from keras_kd.jobs import tune as tuning
    from keras_kd.jobs.config import DistillConfig

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the settings")

    monkeypatch.setattr(tuning.run_teacher, "prepare", no_training)
    with pytest.raises(ValueError, match="validation_split"):
        tuning.tune(DistillConfig(validation_split=0.0), str(tmp_path))
    with pytest.raises(ValueError, match="alpha_schedule"):
        tuning.tune(DistillConfig(alpha_schedule={"name": "linear"}), str(tmp_path))
    with pytest.raises(ValueError, match="Unknown recipe"):
        tuning.tune(DistillConfig(), str(tmp_path), recipe_names=("hinton", "magic"))
    with pytest.raises(ValueError, match="max_trials"):
        tuning.tune(DistillConfig(), str(tmp_path), max_trials=0)
    with pytest.raises(ValueError, match="never reads the test set"):
        tuning.tune(DistillConfig(train="mine.npz", test="mine_test.npz"), str(tmp_path))
    with pytest.raises(ValueError, match="give the trained teacher"):
        tuning.tune(DistillConfig(train=str(tmp_path)), str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_cli_tune_then_distill_with_best_yaml(tmp_path):
    out = tmp_path / "tune"
    result = run_cli("tune", f"--output_dir={out}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| student | recipe |" in result.stdout and "from labels" in result.stdout
    assert (out / "best.yaml").exists() and (out / "tune.json").exists()
    # The verdict is the one the recorded searches give: each best is the max of its trials, and the
    # sentence says which side won, by the recorded difference.
    summary = json.loads((out / "tune.json").read_text())
    for side in ("distilled", "control"):
        trials = summary[side]["trials"]
        assert summary[side]["best"]["val_accuracy"] == max(trial["val_accuracy"] for trial in trials)
    points = 100 * (summary["distilled"]["best"]["val_accuracy"] - summary["control"]["best"]["val_accuracy"])
    assert summary["difference_points"] == pytest.approx(round(points, 2))
    said = "beats the equally tuned control" if points > 0 else "NO distilled setting beat the equally tuned control"
    assert said in result.stdout and f"{abs(points):.2f} points" in result.stdout.replace("-", "")

    rerun = run_cli(
        "distill",
        f"--config={out / 'best.yaml'}",
        "--teacher_epochs=1",
        "--student_epochs=1",
        "--verbose=0",
        f"--output_dir={tmp_path / 'distill'}",
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (tmp_path / "distill" / "report.json").exists()

    again = run_cli("tune", f"--output_dir={out}", *TINY, timeout=120)  # a non-empty folder needs --overwrite
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_cli_refuses_bad_settings_before_training(tmp_path):
    result = run_cli("tune", "--validation_split=0", f"--output_dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode == 2 and "validation_split" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_cli_tune_on_your_own_image_folders_then_distill_with_best_yaml(tmp_path):
    """Own data through the distill job's preparation: scored on --validation only, no test set read."""
    from keras_kd.backend import keras
    from keras_kd.datasets import user_data
    from tests.test_user_data import _image_folders

    teacher, student = _image_folders(tmp_path, 36, 18, 15, held_out_name="validation")
    x_val, y_val, _ = user_data.load(str(tmp_path / "validation"), (8, 8, 1))
    teacher_logits = keras.models.load_model(teacher, compile=False).predict(x_val, verbose=0)
    expected_teacher_accuracy = float(np.mean(np.argmax(teacher_logits, axis=-1) == y_val))

    out = tmp_path / "tune"
    data = [
        f"--train={tmp_path / 'train'}",
        f"--unlabeled={tmp_path / 'pool'}",
        f"--validation={tmp_path / 'validation'}",
    ]
    result = run_cli(
        "tune",
        f"--teacher={teacher}",
        f"--student={student}",
        *data,
        f"--output_dir={out}",
        "--max_trials=2",
        "--student_epochs=1",
        "--verbose=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| student | recipe |" in result.stdout
    summary = json.loads((out / "tune.json").read_text())
    assert summary["validation_examples"] == 15 and summary["data"]["train"] == str(tmp_path / "train")
    assert summary["teacher_val_accuracy"] == pytest.approx(expected_teacher_accuracy)
    assert len(summary["distilled"]["trials"]) == 2 and len(summary["control"]["trials"]) == 2
    for trial in summary["distilled"]["trials"] + summary["control"]["trials"]:
        assert round(trial["val_accuracy"] * 15) == pytest.approx(trial["val_accuracy"] * 15)  # k of 15 examples

    from keras_kd.jobs.config import DistillConfig

    values = DistillConfig.read_yaml(str(out / "best.yaml"))
    assert values["train"] == str(tmp_path / "train") and values["student_path"] == student
    assert values["teacher_path"] == teacher and "test" not in values and "dataset" not in values
    rerun = run_cli(
        "distill",
        f"--config={out / 'best.yaml'}",
        f"--test={tmp_path / 'validation'}",
        "--student_epochs=1",
        "--verbose=0",
        f"--output_dir={tmp_path / 'distill'}",
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads((tmp_path / "distill" / "report.json").read_text())
    assert report["metadata"]["unlabeled_examples"] == 18 and report["metadata"]["validation_examples"] == 15


def test_cli_tune_has_no_test_flag_and_refuses_own_data_problems(tmp_path):
    result = run_cli("tune", f"--test={tmp_path}", f"--output_dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode == 2 and "test" in result.stderr and "Traceback" not in result.stderr
    np.savez(tmp_path / "train.npz", x=np.zeros((10, 4), "float32"), y=np.zeros(10, "int64"))
    result = run_cli(
        "tune", f"--train={tmp_path / 'train.npz'}", "--student=digits", f"--output_dir={tmp_path / 'run'}", timeout=120
    )
    assert result.returncode == 2 and "teacher" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
