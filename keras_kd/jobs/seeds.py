"""A job over several seeds: every model's figures per seed, and their mean and spread.

One seed's figures say little on small data: the examples and benchmarks report each model's
test accuracy as mean ± sample standard deviation over seeds, and the distilled student's gain
over the student from labels seed by seed (both start from the same weights in each seed).
"""

import dataclasses
import os
import platform
import tempfile

import numpy as np

from keras_kd.backend import ENGINE_DESCRIPTION


def machine():
    """The machine and engine in words, for the header of a results file."""
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {ENGINE_DESCRIPTION}"


def int8_student(config, folder, rows, int8_io=False, representative=1000):
    """The distilled student of a finished run (`folder`), exported as a full-integer TFLite file and
    measured with the TFLite interpreter on the test set: a report row as a dict."""
    from keras_kd.backend import keras
    from keras_kd.compression import artifacts, export_tflite
    from keras_kd.jobs.data import load_split

    (x_train, _), (x_test, y_test) = load_split(config)
    student = keras.models.load_model(os.path.join(folder, "student_kd.keras"), compile=False)
    path = os.path.join(folder, "student_kd_int8.tflite")
    export_tflite(student, path, "int8", representative_data=x_train[:representative], int8_io=int8_io)
    measured = artifacts.measure(path, "tflite", x_test, y_test)
    return {
        "name": "student_kd_int8",
        "params": rows[-1].params,
        "size_bytes": measured["size_bytes"],
        "accuracy": measured["accuracy"],
        "latency_ms": measured["latency_ms_batch1"],
    }


def run_over_seeds(config, seeds, with_int8=False, int8_io=False, log=print):
    """`keras-kd distill`'s job once per seed (`config` with each seed in turn).

    Returns:
        A list of `{"seed", "models": [row dict, ...], "metadata"}`, one per seed; with
        `with_int8`, a `student_kd_int8` row (the distilled student's int8 TFLite file) too.
    """
    from keras_kd.jobs.distill import run_distill

    runs = []
    for seed in seeds:
        seeded = dataclasses.replace(config, seed=int(seed))
        with tempfile.TemporaryDirectory() as folder:
            rows, metadata = run_distill(seeded, folder)
            models = [row.as_dict() for row in rows]
            if with_int8:
                models.append(int8_student(seeded, folder, rows, int8_io))
        runs.append({"seed": int(seed), "models": models, "selection": selection(metadata), "metadata": metadata})
        log(f"seed {seed}: " + ", ".join(f"{m['name']} {100 * m['accuracy']:.2f}%" for m in models))
    return runs


def selection(metadata):
    """The results files' `selection`: per model, the settings it tried with their validation
    accuracy, the one chosen, and the epoch kept (`keras_kd.jobs.sweep`)."""
    return {
        role: {
            "trials": record.get("trials", []),
            "chosen": record.get("chosen"),
            "best_epoch": record["best_epoch"],
        }
        for role, record in metadata["selection"].items()
    }


def search_in_words(runs):
    """How the students' settings were chosen, from the results' `selection` ("" if neither searched)."""
    parts = []
    for role in ("student_scratch", "student_kd"):
        records = [run.get("selection", {}).get(role) for run in runs]
        if not all(records) or len(records[0]["trials"]) < 2:
            continue
        trials = records[0]["trials"]
        varied = [key for key in records[0]["chosen"] if len({str(t["settings"][key]) for t in trials}) > 1]
        choices = ", ".join(" x ".join(f"{record['chosen'][key]:g}" for key in varied) for record in records)
        names = " x ".join(key.replace("_", " ") for key in varied)
        parts.append(f"{role} tried {len(trials)} settings of {names} and chose {choices}")
    if not parts:
        return ""
    seeds = ", ".join(str(run["seed"]) for run in runs)
    return (
        "Each student searched a grid of its own, of the same size, on validation data held out of training, "
        f"in each seed (the choice is per seed; the test set chose nothing). Seed by seed ({seeds}): "
        + "; ".join(parts)
        + "."
    )


def figures(runs, name, key):
    """`key` of model `name` in each run, as an array (one value per seed)."""
    return np.array([next(m[key] for m in run["models"] if m["name"] == name) for run in runs], dtype=float)


def mean_and_spread(values):
    """Mean and sample standard deviation (0 for a single seed)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def gains(runs, better="student_kd", baseline="student_scratch"):
    """Accuracy points of `better` over `baseline`, seed by seed."""
    return 100 * (figures(runs, better, "accuracy") - figures(runs, baseline, "accuracy"))


def summary_table(runs, labels=None):
    """A Markdown table: each model's parameters, size, accuracy (mean ± std) and median latency."""
    names = [model["name"] for model in runs[0]["models"]]
    lines = [
        "| model | parameters | size (MB) | test accuracy (%), mean ± std | CPU latency (ms/example), median |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        mean, spread = mean_and_spread(100 * figures(runs, name, "accuracy"))
        lines.append(
            f"| {(labels or {}).get(name, name)} | {int(figures(runs, name, 'params')[0]):,} | "
            f"{figures(runs, name, 'size_bytes').mean() / 1e6:.3f} | {mean:.2f} ± {spread:.2f} | "
            f"{np.median(figures(runs, name, 'latency_ms')):.3f} |"
        )
    return "\n".join(lines)


def describe(metadata):
    """The run's data and method in words, from a report's metadata."""
    teacher = (
        f"teacher trained on all {metadata['train_examples']:,} training labels for {metadata['teacher_epochs']} epochs"
        if metadata.get("teacher_epochs")
        else "teacher loaded"
    )
    return (
        f"{teacher}; both students start from the same weights; {students_in_words(metadata)}; recipe "
        f"{metadata['recipe']} (alpha {metadata['alpha']}, T {metadata['temperature']}); "
        f"{metadata['validation_examples']} training examples held out for validation"
    )


def students_in_words(metadata):
    """How the two students trained, from a report's metadata (results files of either rule)."""
    labeled, unlabeled = f"{metadata['labeled_examples']:,}", f"{metadata['unlabeled_examples']:,}"
    if "scratch_epochs" in metadata:  # results written before the best-epoch rule
        return (
            f"the student from labels sees {labeled} labelled examples for {metadata['scratch_epochs']} epochs, the "
            f"distilled student the same labelled examples plus {unlabeled} unlabelled ones for "
            f"{metadata['student_epochs']} epochs (the same number of optimizer steps), each scored at its last step"
        )
    return (
        f"the student from labels sees {labeled} labelled examples, the distilled student the same plus {unlabeled} "
        f"unlabelled ones, each for up to {metadata['student_epochs']} epochs of {metadata['steps_per_epoch']:,} "
        f"optimizer steps, keeping its best epoch on validation and stopping after {metadata['patience']} epochs "
        "without improvement"
    )
