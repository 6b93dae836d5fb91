"""Where distillation pays: accuracy against labelled examples and against student size.

Two curves on digits, each point the mean of several seeds, the teacher's accuracy drawn
beside them:

- labels: the preset student (16 hidden units) from a share of the training labels alone,
  against the same student distilled on those labels plus the rest as an unlabelled pool;
- size: students of several widths from every training label, against the same students
  distilled on the same examples (no pool: the teacher knows nothing the labels lack).

Every pair starts from the same initial weights with the same number of optimizer steps
and the same (default `hinton`) recipe. Writes `benchmarks/results/when_distillation_pays.json`,
`docs/images/accuracy_vs_labels.png`, `docs/images/accuracy_vs_student_size.png`:

    python benchmarks/when_distillation_pays.py --seeds=0,1,2
"""

import dataclasses
import json
import os
import platform
import time

import numpy as np
from absl import app, flags

from keras_kd.backend import ENGINE_DESCRIPTION, keras
from keras_kd.jobs.config import DistillConfig
from keras_kd.jobs.data import load_split, split_data
from keras_kd.jobs.report import accuracy
from keras_kd.jobs.teacher import train_or_load_teacher
from keras_kd.jobs.training import teacher_and_students
from keras_kd.models.mlp import build_mlp
from keras_kd.utils import count_params

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each draws its own validation split and labelled subset.")
flags.DEFINE_list("fractions", ["0.05", "0.1", "0.25", "0.5", "1.0"], "Shares of the training labels.")
flags.DEFINE_list("widths", ["4", "8", "16", "64", "256"], "Hidden units of the students of the size curve.")
flags.DEFINE_string("results", "benchmarks/results/when_distillation_pays.json", "Raw results.")
flags.DEFINE_string("images", "docs/images", "Where the plots go.")


def _pair(config, split, teacher, width, input_shape):
    """(from labels, distilled) test accuracy and the student's parameter count."""

    def build(name):
        return build_mlp(input_shape, 10, hidden_units=(width,), name=name)

    scratch, distilled = teacher_and_students(config, split, teacher, build_student=build)
    return count_params(scratch), scratch, distilled


def run_seed(seed):
    base = DistillConfig(seed=seed, verbose=0)
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_split(base)
    input_shape = x_train.shape[1:]
    teacher = train_or_load_teacher(base, split_data(base, x_train, y_train))
    result = {"seed": seed, "teacher": accuracy(teacher, x_test, y_test), "labels": [], "size": []}
    for fraction in (float(f) for f in FLAGS.fractions):
        config = dataclasses.replace(base, labeled_fraction=fraction)
        split = split_data(config, x_train, y_train)
        keras.utils.set_random_seed(seed)
        params, scratch, distilled = _pair(config, split, teacher, 16, input_shape)
        result["labels"].append(
            {
                "fraction": fraction,
                "labeled": len(split.labeled[0]),
                "scratch": accuracy(scratch, x_test, y_test),
                "distilled": accuracy(distilled, x_test, y_test),
            }
        )
        print(f"seed {seed} labels {len(split.labeled[0])}: {result['labels'][-1]}", flush=True)
    config = dataclasses.replace(base, labeled_fraction=1.0)
    split = split_data(config, x_train, y_train)
    for width in (int(w) for w in FLAGS.widths):
        keras.utils.set_random_seed(seed)
        params, scratch, distilled = _pair(config, split, teacher, width, input_shape)
        result["size"].append(
            {
                "width": width,
                "params": params,
                "scratch": accuracy(scratch, x_test, y_test),
                "distilled": accuracy(distilled, x_test, y_test),
            }
        )
        print(f"seed {seed} width {width}: {result['size'][-1]}", flush=True)
    return result


def _curve(runs, key, x_key):
    """x values, and per series the mean and std over seeds, in points."""
    xs = [point[x_key] for point in runs[0][key]]
    series = {}
    for name in ("scratch", "distilled"):
        values = 100 * np.array([[point[name] for point in run[key]] for run in runs])
        series[name] = (values.mean(0), values.std(0, ddof=1) if len(runs) > 1 else 0 * values.mean(0))
    return xs, series


def plot(runs, key, x_key, x_label, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, series = _curve(runs, key, x_key)
    teacher = 100 * np.mean([run["teacher"] for run in runs])
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for name, label, marker in (("scratch", "student from labels", "o"), ("distilled", "distilled student", "s")):
        mean, std = series[name]
        axes.errorbar(xs, mean, yerr=std, marker=marker, capsize=3, label=label)
    axes.axhline(teacher, color="grey", linestyle="--", label=f"teacher ({teacher:.1f} %)")
    axes.set_xscale("log")
    axes.set_xticks(xs)
    axes.set_xticklabels([f"{x:,}" for x in xs])
    axes.minorticks_off()
    axes.set_xlabel(x_label)
    axes.set_ylabel("test accuracy (%), mean ± std over seeds")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def tables(runs):
    """Markdown tables of both curves: mean ± std per point, and distilled − from labels per seed."""
    out = []
    for key, x_key, heading in (("labels", "labeled", "labelled examples"), ("size", "params", "student parameters")):
        xs, series = _curve(runs, key, x_key)
        out += [
            f"| {heading} | from labels (%) | distilled (%) | distilled − from labels, per seed (points) |",
            "|---:|---:|---:|---|",
        ]
        for index, x in enumerate(xs):
            gains = ", ".join(
                f"{100 * (run[key][index]['distilled'] - run[key][index]['scratch']):+.2f}" for run in runs
            )
            (s_mean, s_std), (d_mean, d_std) = (
                (m[index], d[index]) for m, d in (series["scratch"], series["distilled"])
            )
            out.append(f"| {x:,} | {s_mean:.2f} ± {s_std:.2f} | {d_mean:.2f} ± {d_std:.2f} | {gains} |")
        out.append("")
    teacher = 100 * np.array([run["teacher"] for run in runs])
    out.append(f"Teacher: {teacher.mean():.2f} ± {teacher.std(ddof=1) if len(runs) > 1 else 0:.2f} %.")
    return "\n".join(out)


def write_doc(runs, machine, path="docs/when_distillation_pays.md"):
    """Replace the generated block of the guide with this run's tables."""
    begin, end = "<!-- generated:begin (benchmarks/when_distillation_pays.py) -->", "<!-- generated:end -->"
    text = open(path).read()
    block = (
        f"Generated by `python benchmarks/when_distillation_pays.py --seeds={','.join(FLAGS.seeds)}` on "
        f"{machine}; raw figures in `{FLAGS.results}`.\n\n{tables(runs)}\n"
    )
    start, stop = text.index(begin) + len(begin), text.index(end)
    with open(path, "w") as handle:
        handle.write(text[:start] + "\n" + block + text[stop:])


def main(_):
    started = time.time()
    runs = [run_seed(int(seed)) for seed in FLAGS.seeds]
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {ENGINE_DESCRIPTION}"
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
    with open(FLAGS.results, "w") as handle:
        json.dump({"machine": machine, "wall_seconds": round(time.time() - started, 1), "runs": runs}, handle, indent=2)
    plot(
        runs,
        "labels",
        "labeled",
        "labelled training examples (the rest: unlabelled pool)",
        "digits: 16-unit student, by labelled examples",
        os.path.join(FLAGS.images, "accuracy_vs_labels.png"),
    )
    plot(
        runs,
        "size",
        "params",
        "student parameters (every training label, no pool)",
        "digits: students of several widths, same data",
        os.path.join(FLAGS.images, "accuracy_vs_student_size.png"),
    )
    write_doc(runs, machine)
    print(tables(runs))
    print(f"written {FLAGS.results} and the plots in {FLAGS.images} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    app.run(main)
