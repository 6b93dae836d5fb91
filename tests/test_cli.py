"""`keras-kd distill` end to end on digits, its errors, and what an interrupted run leaves."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_kd.jobs.report import staged_output_dir

QUICK = ["--teacher_epochs=3", "--student_epochs=2", "--verbose=0"]


def run_cli(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run(
        [sys.executable, "-m", "keras_kd.cli.main", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def kill_in_stage(args, stage_line="distilling the student", epoch_line="Epoch 4/6"):
    """Run `keras-kd *args`; SIGKILL it when `epoch_line` starts after the log line that opens a stage
    (`stage_line`), or at that line itself when `epoch_line` is None. Returns the log."""
    env = dict(os.environ, PYTHONPATH=os.getcwd(), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_kd.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    log, in_stage = [], False
    for line in process.stdout:
        log.append(line)
        in_stage = in_stage or stage_line in line
        if in_stage and (epoch_line is None or line.startswith(epoch_line)):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=600)
    assert process.returncode == -signal.SIGKILL, f"the run ended before the kill in {stage_line!r}:\n{''.join(log)}"
    return "".join(log)


def test_distill_on_digits_writes_the_report(tmp_path):
    out = tmp_path / "run"
    result = run_cli("distill", f"--output_dir={out}", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| student_kd |" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "digits"
    names = [row["name"] for row in report["models"]]
    assert names == ["teacher", "student_scratch", "student_kd"]
    for row in report["models"]:
        assert set(row) == {"name", "params", "size_bytes", "accuracy", "latency_ms", "model_name"}
        assert 0.0 <= row["accuracy"] <= 1.0 and row["latency_ms"] > 0
        assert row["size_bytes"] == os.path.getsize(out / f"{row['name']}.keras")
    rows = {row["name"]: row for row in report["models"]}
    assert rows["student_kd"]["params"] == rows["student_scratch"]["params"] < rows["teacher"]["params"]
    assert (out / "report.md").read_text().count("|") > 20
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert not [name for name in os.listdir(tmp_path) if ".partial" in name]  # staging removed

    # The saved teacher is reused with --teacher; both students search two rates on validation.
    search = ["--learning_rate_grid=1e-3,1e-2", f"--teacher={out / 'teacher.keras'}", *QUICK]
    refused = run_cli("distill", f"--output_dir={tmp_path / 'refused'}", "--validation_split=0", *search)
    assert refused.returncode == 2 and "chooses on validation data" in refused.stderr
    again = run_cli("distill", f"--output_dir={tmp_path / 'again'}", *search)
    assert again.returncode == 0, again.stderr[-3000:]
    reused = json.loads((tmp_path / "again" / "report.json").read_text())
    assert reused["models"][0]["accuracy"] == pytest.approx(rows["teacher"]["accuracy"])
    for arm in ("student_scratch", "student_kd"):
        selection = reused["metadata"]["selection"][arm]
        assert [trial["settings"]["learning_rate"] for trial in selection["trials"]] == [1e-3, 1e-2]
        best = max(selection["trials"], key=lambda trial: trial["validation"])
        assert selection["chosen"] == best["settings"] and selection["best_epoch"] == best["best_epoch"]


def test_unknown_dataset_is_refused_before_training(tmp_path):
    result = run_cli("distill", "--dataset=imagenet", f"--output_dir={tmp_path / 'x'}", timeout=120)
    assert result.returncode == 2
    assert "dataset" in result.stderr and "digits" in result.stderr
    assert not (tmp_path / "x").exists()


def test_unknown_subcommand():
    result = run_cli("distil", timeout=120)
    assert result.returncode == 2 and "distill" in result.stderr


def test_interrupted_run_leaves_no_output_only_its_backup(tmp_path):
    """SIGTERM mid-run: no report or model in --output_dir, only the backup a rerun resumes from."""
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.getcwd(), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_kd.cli.main",
            "distill",
            f"--output_dir={out}",
            "--teacher_epochs=500",
            "--verbose=2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.time() + 300
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Epoch 2/") or time.time() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=120)
    seen = f"exit status {process.returncode}; output ends:\n{''.join(lines[-5:])}{rest[-2000:]}"
    assert process.returncode != 0, seen
    assert not out.exists() or set(os.listdir(out)) <= {"backup"}, seen
    assert [name for name in os.listdir(tmp_path) if name != "run"] == [], seen  # no staging folder beside it


def test_staged_output_dir_keeps_old_files_on_failure(tmp_path):
    (tmp_path / "report.json").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_output_dir(str(tmp_path)) as staging:
            open(os.path.join(staging, "report.json"), "w").write("half")
            raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["report.json"]
    assert (tmp_path / "report.json").read_text() == "old"


def test_output_dir_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        with staged_output_dir(str(target)):
            pass


def test_saved_size_excludes_optimizer_state(tmp_path):
    import numpy as np

    from keras_kd import models
    from keras_kd.jobs.report import model_file_size

    fresh = models.build_model("digits", "student", (8, 8, 1), 10)
    trained = models.build_model("digits", "student", (8, 8, 1), 10)
    trained.compile(optimizer="adam", loss="mse")
    trained.fit(np.zeros((4, 8, 8, 1)), np.zeros((4, 10)), verbose=0)
    assert abs(model_file_size(trained) - model_file_size(fresh)) < 64


def test_config_file_with_flag_override(tmp_path):
    config = tmp_path / "method.yaml"
    config.write_text("alpha: 0.5\ntemperature: 2.0\ndistillation_loss: {name: dkd, beta: 2.0}\nstudent_epochs: 50\n")
    out = tmp_path / "run"
    result = run_cli(
        "distill",
        f"--config={config}",
        f"--output_dir={out}",
        "--student_epochs=1",
        "--teacher_epochs=1",
        "--verbose=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((out / "report.json").read_text())["metadata"]
    assert metadata["alpha"] == 0.5 and metadata["student_epochs"] == 1  # the flag wins
    assert "dkd" in metadata["method"]


def test_bad_config_file_is_refused(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("distillation_loss: nonsense\n")
    result = run_cli("distill", f"--config={config}", f"--output_dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode == 2 and "known distillation losses" in result.stderr


@pytest.mark.parametrize("subcommand", ["distill", "compress", "tune"])
@pytest.mark.parametrize("flag", ["--help", "--helpfull", "-h"])
def test_help_on_every_subcommand_exits_0_without_tensorflow(subcommand, flag):
    code = (
        "import sys; from keras_kd.cli.main import main\n"
        "try:\n    main(['keras-kd', sys.argv[1], sys.argv[2]])\n"
        "except SystemExit as e:\n    print('exit', e.code)\n"
        "print('tensorflow imported', 'tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, subcommand, flag],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
        timeout=60,
    )
    assert "exit 0" in result.stdout and "--output_dir" in result.stdout
    assert "tensorflow imported False" in result.stdout


@pytest.mark.parametrize(
    "setting", ["--alpha=2", "--temperature=0", "--labeled_fraction=0", "--validation_split=1", "--recipe=magic"]
)
def test_bad_settings_are_refused_before_training(tmp_path, setting):
    out = tmp_path / "run"
    result = run_cli("distill", setting, f"--output_dir={out}", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    name = setting.split("=")[0].lstrip("-")
    assert name in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_bad_setting_in_a_config_file_is_refused_before_training(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("alpha: 2\n")
    result = run_cli("distill", f"--config={config}", f"--output_dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode == 2 and "alpha" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_non_empty_output_dir_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    (out / "teacher.keras").mkdir(parents=True)  # a user's folder that happens to share a name
    (out / "notes.txt").write_text("mine")
    result = run_cli("distill", f"--output_dir={out}", *QUICK, timeout=120)
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (out / "teacher.keras").is_dir() and (out / "notes.txt").read_text() == "mine"
    result = run_cli("distill", f"--output_dir={out}", "--overwrite", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "notes.txt").read_text() == "mine"  # only keras-kd's own files are replaced
    assert (out / "report.json").exists()


def test_a_file_as_output_dir_is_a_clean_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = run_cli("distill", f"--output_dir={target}", timeout=120)
    assert result.returncode == 2 and "is a file" in result.stderr and "Traceback" not in result.stderr


def test_compress_on_your_own_image_folders(tmp_path):
    """`keras-kd compress` takes the streamed own-data split too (its later stages read it as arrays)."""
    from keras_kd.backend import is_tensorflow_backed
    from tests.test_user_data import _image_folders

    if not is_tensorflow_backed():
        pytest.skip("compress exports SavedModels and TFLite: TensorFlow")
    teacher, student = _image_folders(tmp_path, 30, 9, 12)
    out = tmp_path / "run"
    result = run_cli(
        "compress",
        f"--teacher={teacher}",
        f"--student={student}",
        f"--train={tmp_path / 'train'}",
        f"--unlabeled={tmp_path / 'pool'}",
        f"--test={tmp_path / 'test'}",
        f"--output_dir={out}",
        "--student_epochs=1",
        "--prune_epochs=1",
        "--sparsity=0.5",
        "--verbose=0",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((out / "report.json").read_text())["metadata"]
    assert metadata["unlabeled_examples"] == 9 and metadata["labeled_examples"] == 27  # 3 held out for validation


def test_a_run_killed_in_a_later_trial_resumes_to_the_uninterrupted_runs_choice_and_weights(tmp_path):
    """SIGKILL in the second epoch of the distilled student's second trial; a rerun with other settings is
    refused (the backup kept); the same command again loads the teacher and every trial finished before
    the kill, goes on with the second trial after its first epoch, and ends as an uninterrupted run:
    the same choices, the same teacher and students from labels, and the same distilled student on Keras
    3's TensorFlow backend, whose array shuffling follows the epoch (on JAX, PyTorch and tf_keras the
    resumed epochs are shuffled in another order than an uninterrupted run's)."""
    from keras_kd.backend import BACKEND, IS_TF_KERAS, keras

    out = tmp_path / "run"
    args = ["distill", "--teacher_epochs=2", "--student_epochs=3", "--learning_rate_grid=1e-3,3e-3", "--verbose=2"]
    kill_in_stage([*args, f"--output_dir={out}"], stage_line="student_kd_trial1 learning rate", epoch_line="Epoch 2/3")
    backup = out / "backup"
    finished = {"teacher", "student_scratch_trial1", "student_scratch_trial2", "student_kd_trial1"}
    assert {"settings.json", "initial.weights.h5", *(f"{role}.weights.h5" for role in finished)} <= set(
        os.listdir(backup)
    ) and not (out / "report.json").exists()

    other = run_cli(*args, "--seed=1", f"--output_dir={out}")  # other settings: refused, backup kept
    assert other.returncode == 2 and "other settings (seed)" in other.stderr and backup.exists()

    rerun = run_cli(*args, f"--output_dir={out}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for role in sorted(finished):
        assert f"{role}: trained in an earlier run" in rerun.stdout, role
    assert "student_kd_trial2: trained in an earlier run" not in rerun.stdout
    # The second trial went on after its first epoch, which the killed run completed.
    second = rerun.stdout.split("student_kd_trial1 learning rate")[1].split("student_kd_trial2 learning rate")[0]
    assert "Epoch 2/3" in second and "Epoch 1/3" not in second, second
    assert (out / "report.json").exists() and not backup.exists()

    uninterrupted = tmp_path / "uninterrupted"
    assert run_cli(*args, f"--output_dir={uninterrupted}").returncode == 0
    resumed, reference = (json.loads((folder / "report.json").read_text()) for folder in (out, uninterrupted))
    for arm in ("student_scratch", "student_kd"):
        assert resumed["metadata"]["selection"][arm]["chosen"] == reference["metadata"]["selection"][arm]["chosen"]
    exact = BACKEND == "tensorflow" and not IS_TF_KERAS
    if exact:
        assert resumed["metadata"]["selection"]["student_kd"] == reference["metadata"]["selection"]["student_kd"]
    for name in ("teacher", "student_scratch") + (("student_kd",) if exact else ()):
        a, b = (keras.models.load_model(folder / f"{name}.keras", compile=False) for folder in (out, uninterrupted))
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_killed_run_on_your_own_models_resumes_each_by_its_role(tmp_path):
    """Both students are copies of one user model, under its name: killed while distilling, the rerun
    loads the student from labels as such and goes on with the distilled student, whose weights end
    apart from the student from labels'."""
    from keras_kd.backend import keras
    from tests import signals

    keras.utils.set_random_seed(0)
    teacher = signals.conv_teacher(keras)
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(*signals.signals(1000, seed=1), epochs=3, verbose=0)
    teacher.save(tmp_path / "teacher.keras")
    signals.dense_student(keras).save(tmp_path / "student.keras")
    for name, n, seed in (("train", 60, 2), ("pool", 600, 3), ("test", 100, 5)):
        x, y = signals.signals(n, seed=seed)
        np.savez(tmp_path / f"{name}.npz", **({"x": x} if name == "pool" else {"x": x, "y": y}))
    out = tmp_path / "run"
    args = ["distill", "--student_epochs=6", "--patience=6", "--verbose=2", f"--output_dir={out}"]
    args += [
        f"--{flag}={tmp_path / name}" for flag, name in (("teacher", "teacher.keras"), ("student", "student.keras"))
    ]
    args += [f"--{flag}={tmp_path / flag}.npz" for flag in ("train", "test")] + [f"--unlabeled={tmp_path / 'pool.npz'}"]
    kill_in_stage(args)
    assert {"student_scratch.weights.h5", "student_kd"} <= set(os.listdir(out / "backup"))
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "student_scratch: trained in an earlier run" in rerun.stdout
    assert "student_kd: trained in an earlier run" not in rerun.stdout
    distillation = rerun.stdout.split("distilling the student")[1]
    assert "Epoch 4/6" in distillation and "Epoch 1/6" not in distillation
    from_labels = keras.models.load_model(out / "student_scratch.keras", compile=False).get_weights()
    distilled = keras.models.load_model(out / "student_kd.keras", compile=False).get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(from_labels, distilled))
    history = json.loads((out / "history.json").read_text())  # the epochs before the kill are kept
    assert [entry["epoch"] for entry in history["student_kd"]["epochs"]] == [1, 2, 3, 4, 5, 6]
