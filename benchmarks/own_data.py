"""A user's own models and data through `keras-kd distill`, at the shape of the own-data bug report.

Makes the data (procedural 1-D signals, `tests/signals.py`: 10 classes, 64 samples, heavy noise),
trains a convolutional teacher on 20,000 labelled signals of its own, saves an untrained dense
student named as a Keras user names it, writes 600 labelled training signals, a pool of 40,000
unlabelled ones and a test set as `.npz` files, then runs the README's own-data command in a
subprocess, as a user would. The results file keeps the report's rows, the epoch each student
kept, the log's duration estimates beside the real durations, and the whole run's wall time.

    python benchmarks/own_data.py        # results in benchmarks/results/own_data.json
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import signals  # noqa: E402

flags.DEFINE_integer("labeled", 600, "Labelled training signals.")
flags.DEFINE_integer("unlabeled", 40000, "Unlabelled signals in the pool.")
flags.DEFINE_integer("teacher_examples", 20000, "The teacher's own labelled signals.")
flags.DEFINE_integer("test_examples", 5000, "Test signals.")
flags.DEFINE_string("results", "benchmarks/results/own_data.json", "Where the results go.")
FLAGS = flags.FLAGS
TASK = {"classes": 10, "length": 64, "noise": 1.0}


def make_files(folder):
    import keras

    keras.utils.set_random_seed(0)
    teacher = signals.conv_teacher(keras, classes=TASK["classes"], length=TASK["length"])
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(*signals.signals(FLAGS.teacher_examples, seed=1, **TASK), epochs=20, batch_size=64, verbose=0)
    teacher.save(os.path.join(folder, "teacher.keras"))
    student = signals.dense_student(keras, classes=TASK["classes"], length=TASK["length"])
    student.save(os.path.join(folder, "student.keras"))
    for name, n, seed in (("train", FLAGS.labeled, 2), ("pool", FLAGS.unlabeled, 3), ("test", FLAGS.test_examples, 5)):
        x, y = signals.signals(n, seed=seed, **TASK)
        np.savez(os.path.join(folder, f"{name}.npz"), **({"x": x} if name == "pool" else {"x": x, "y": y}))


def run_distill(folder):
    """The README's own-data command, timed; returns (stdout, seconds)."""
    command = ["keras-kd", "distill"] + [
        f"--{flag}={os.path.join(folder, name)}"
        for flag, name in (
            ("teacher", "teacher.keras"),
            ("student", "student.keras"),
            ("train", "train.npz"),
            ("unlabeled", "pool.npz"),
            ("test", "test.npz"),
            ("output_dir", "run"),
        )
    ]
    started = time.monotonic()
    result = subprocess.run(command + ["--verbose=2"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return result.stdout, time.monotonic() - started


def estimates(stdout):
    """Each student's estimated seconds an epoch (printed early in its training) beside the seconds an
    epoch the later epochs took (printed when it ends)."""
    found = {}
    for role in ("student_scratch", "student_kd"):
        match = re.search(
            rf"{role} \([^)]*\): the (\d+) epochs after the estimate took .*?\(([0-9.]+) s an epoch; "
            rf"estimated ([0-9.]+)\)",
            stdout,
        )
        if match:
            epochs, real, estimated = int(match.group(1)), float(match.group(2)), float(match.group(3))
            found[role] = {
                "epochs": epochs,
                "seconds_an_epoch": real,
                "estimated": estimated,
                "ratio": estimated / real,
            }
    return found


def main(_):
    with tempfile.TemporaryDirectory() as folder:
        make_files(folder)
        stdout, seconds = run_distill(folder)
        with open(os.path.join(folder, "run", "report.json")) as handle:
            report = json.load(handle)
    rows = {row["name"]: row for row in report["models"]}
    results = {
        "task": {**TASK, "labeled": FLAGS.labeled, "unlabeled": FLAGS.unlabeled, "test": FLAGS.test_examples},
        "models": report["models"],
        "selection": report["metadata"]["selection"],
        "gain_points": round(100 * (rows["student_kd"]["accuracy"] - rows["student_scratch"]["accuracy"]), 2),
        "wall_seconds": round(seconds, 1),
        "estimates": estimates(stdout),
        "log": [line for line in stdout.splitlines() if line.startswith(("[", "      "))],
        "cpu_count": os.cpu_count(),
    }
    with open(FLAGS.results, "w") as handle:
        json.dump(results, handle, indent=2)
    print("\n".join(results["log"]))
    print(json.dumps({key: results[key] for key in ("gain_points", "wall_seconds", "selection")}, indent=2))


if __name__ == "__main__":
    app.run(main)
