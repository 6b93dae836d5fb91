"""Every distillation method on one teacher/student pair on Fashion-MNIST, same epochs, several seeds.

Writes `benchmarks/results/methods_fashion_mnist.json` (every run) and
`docs/methods_benchmark.md` (mean and spread of test accuracy per method, and steady-state
epoch time relative to training the student alone, all measured in this one run):

    python benchmarks/methods_fashion_mnist.py --seeds=0,1,2

The teacher and student are the `fashion_mnist` presets of `keras_kd.models` (CNNs of
1.68M and 55k parameters). Runs within a seed start from the same student weights and are
interleaved, so timings share the machine's state.
"""

import json
import os
import platform
import sys

import numpy as np
from absl import app, flags
from harness import write_doc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import EpochTimer  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd.backend import ENGINE_DESCRIPTION, keras  # noqa: E402
from keras_kd.jobs.report import accuracy  # noqa: E402
from keras_kd.losses import LogitsCrossentropy  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_integer("train_examples", 10000, "Training images used (the first N of the official split).")
flags.DEFINE_integer("teacher_epochs", 6, "Teacher epochs.")
flags.DEFINE_integer("epochs", 6, "Student epochs, the same for every method.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_list("methods", [], "Subset of methods to run (default: all).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST folder.")
flags.DEFINE_string("results", "benchmarks/results/methods_fashion_mnist.json", "Raw results.")
flags.DEFINE_string("doc", "docs/methods_benchmark.md", "Summary table.")

# Method name -> (compile arguments, feature terms). Layer names are those of the presets.
METHODS = {
    "kd": ({"distillation_loss_fn": "kd", "alpha": 0.1, "temperature": 4.0}, []),
    "kd (teacher every step)": ({"distillation_loss_fn": "kd", "alpha": 0.1, "temperature": 4.0}, []),
    "dkd": (
        {
            "distillation_loss_fn": {"name": "dkd", "target_weight": 1.0, "non_target_weight": 8.0},
            "alpha": 0.5,
            "temperature": 4.0,
        },
        [],
    ),
    "dist": (
        {"distillation_loss_fn": {"name": "dist", "beta": 1.0, "gamma": 1.0}, "alpha": 0.5, "temperature": 4.0},
        [],
    ),
    "soft_target_crossentropy": (
        {"distillation_loss_fn": "soft_target_crossentropy", "alpha": 0.1, "temperature": 4.0},
        [],
    ),
    "logits_mse": ({"distillation_loss_fn": "logits_mse", "alpha": 0.1}, []),
    # The papers' settings: LS base T 2 with labels 0.1 against 9; MLKD's own temperatures; CTKD's
    # T = 1 + 20 sigmoid(p) with labels and distillation weighed equally.
    "ls_kd": ({"distillation_loss_fn": "ls_kd", "alpha": 0.011, "temperature": 2.0}, []),
    "mlkd": ({"distillation_loss_fn": "mlkd", "alpha": 0.5}, []),
    "ctkd": ({"distillation_loss_fn": "ctkd", "alpha": 0.5}, []),
    "fitnets + kd": (
        {"alpha": 0.1, "temperature": 4.0},
        [{"loss": "fitnets", "teacher_layer": "relu_1", "student_layer": "relu_1", "weight": 1.0}],
    ),
    "attention_transfer + kd": (
        {"alpha": 0.1, "temperature": 4.0},
        [{"loss": "attention_transfer", "teacher_layer": "relu_1", "student_layer": "relu_1", "weight": 1000.0}],
    ),
    "rkd + kd": (
        {"alpha": 0.1, "temperature": 4.0},
        [{"loss": "rkd", "teacher_layer": "dense", "student_layer": "dense", "weight": 1.0}],
    ),
    "pkt + kd": (
        {"alpha": 0.1, "temperature": 4.0},
        [{"loss": "pkt", "teacher_layer": "dense", "student_layer": "dense", "weight": 30000.0}],
    ),
    "crd + kd": (
        {"alpha": 0.1, "temperature": 4.0},
        [
            {
                "loss": {"name": "crd", "feature_dim": 128, "num_negatives": 1024},
                "teacher_layer": "dense",
                "student_layer": "dense",
                "weight": 0.8,
            }
        ],
    ),
}


def classifier_fit(model, x, y, epochs):
    model.compile(optimizer="adam", loss=LogitsCrossentropy(), metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x, y, epochs=epochs, batch_size=FLAGS.batch_size, verbose=0, callbacks=[timer])
    return timer


def run_method(name, teacher, student, x, y):
    compile_args, feature_specs = METHODS[name]
    features = []
    for spec in feature_specs:
        spec = dict(spec)
        if isinstance(spec["loss"], dict) and spec["loss"]["name"] == "crd":
            spec["loss"] = {**spec["loss"], "num_examples": len(x)}
        features.append(keras_kd.FeatureDistillation(**spec))
    distiller = keras_kd.Distiller(student=student, teacher=teacher, features=features or None)
    distiller.compile(optimizer="adam", metrics=["accuracy"], **compile_args)
    timer = EpochTimer()
    inputs = keras_kd.with_indices(x) if any(f.loss.name == "crd_loss" for f in features) else x
    cache = False if "every step" in name else None  # None: keras-kd's default, the teacher's logits kept
    distiller.fit(
        inputs, y, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, verbose=0, callbacks=[timer], teacher_cache=cache
    )
    return timer


def main(_):
    methods = FLAGS.methods or list(METHODS)
    (x_all, y_all), (x_test, y_test) = keras_kd.datasets.fashion_mnist.load_data(FLAGS.data_dir)
    x, y = x_all[: FLAGS.train_examples], y_all[: FLAGS.train_examples]
    runs = []
    for seed in (int(s) for s in FLAGS.seeds):
        keras.utils.set_random_seed(seed)
        teacher = keras_kd.models.build_model("fashion_mnist", "teacher", x.shape[1:], 10)
        classifier_fit(teacher, x, y, FLAGS.teacher_epochs)
        initial = keras_kd.models.build_model("fashion_mnist", "student", x.shape[1:], 10).get_weights()
        teacher_accuracy = accuracy(teacher, x_test, y_test)
        for name in ["student alone"] + methods:
            keras.utils.set_random_seed(seed)
            student = keras_kd.models.build_model("fashion_mnist", "student", x.shape[1:], 10)
            student.set_weights(initial)
            if name == "student alone":
                timer = classifier_fit(student, x, y, FLAGS.epochs)
            else:
                timer = run_method(name, teacher, student, x, y)
            runs.append(
                {
                    "seed": seed,
                    "method": name,
                    "accuracy": accuracy(student, x_test, y_test),
                    "teacher_accuracy": teacher_accuracy,
                    "epoch_seconds": timer.durations,
                    "steady_epoch_seconds": timer.steady_epoch_seconds,
                }
            )
            print(
                f"seed {seed} {name:<26} acc {100 * runs[-1]['accuracy']:.2f}% epoch {timer.steady_epoch_seconds:.2f}s",
                flush=True,
            )
    write_outputs(runs, ["student alone"] + methods)


def write_outputs(runs, names):
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {ENGINE_DESCRIPTION}"
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
    settings = {
        "train_examples": FLAGS.train_examples,
        "teacher_epochs": FLAGS.teacher_epochs,
        "epochs": FLAGS.epochs,
        "batch_size": FLAGS.batch_size,
        "seeds": FLAGS.seeds,
    }
    with open(FLAGS.results, "w") as handle:
        json.dump({"machine": machine, "settings": settings, "runs": runs}, handle, indent=2)
    seeds = sorted({run["seed"] for run in runs})
    alone = {
        s: next(r["steady_epoch_seconds"] for r in runs if r["seed"] == s and r["method"] == "student alone")
        for s in seeds
    }
    teacher = 100 * np.array([next(r["teacher_accuracy"] for r in runs if r["seed"] == s) for s in seeds])
    lines = [
        "# Methods benchmark: Fashion-MNIST",
        "",
        f"Generated by `python benchmarks/methods_fashion_mnist.py --seeds={','.join(FLAGS.seeds)}` on {machine}; "
        f"raw figures in `{FLAGS.results}`. Teacher: the `fashion_mnist` preset CNN (1.68M parameters), "
        f"{FLAGS.teacher_epochs} epochs; student: the preset CNN (55k parameters), {FLAGS.epochs} epochs for every "
        f"method; the first {FLAGS.train_examples:,} training images, batch {FLAGS.batch_size}, Adam 1e-3; accuracy "
        "on the full 10,000-image test set.",
        "",
        f"Teacher accuracy: {teacher.mean():.2f} ± {teacher.std(ddof=1) if len(teacher) > 1 else 0:.2f} %.",
        "",
        "| method | test accuracy (%), mean ± std | epoch time / student alone (median over seeds) |",
        "|---|---:|---:|",
    ]
    for name in names:
        rows = [r for r in runs if r["method"] == name]
        acc = 100 * np.array([r["accuracy"] for r in rows])
        ratio = np.median([r["steady_epoch_seconds"] / alone[r["seed"]] for r in rows])
        spread = acc.std(ddof=1) if len(acc) > 1 else 0.0
        lines.append(f"| {name} | {acc.mean():.2f} ± {spread:.2f} | {ratio:.2f}x |")
    lines += [
        "",
        "Epoch time is the median of epochs 2 and later (the first includes tracing). Every method runs with "
        "keras-kd's default settings: `fit` keeps the teacher's logits where nothing changes them between epochs "
        "(its one pass over the data happens before the first epoch and is not in the epoch time), so the "
        "response-based methods train at about the student's cost; feature terms read the teacher's layers, so "
        "the teacher runs on every step there, as it does in the `kd (teacher every step)` row "
        "(`teacher_cache=False`).",
    ]
    write_doc(FLAGS.doc, lines)


if __name__ == "__main__":
    app.run(main)
