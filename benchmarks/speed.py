"""Epoch time and peak memory, side by side: the student alone, keras-kd, keras-kd with a teacher
cache, and Keras's own `keras.distillation.Distiller` configured correctly (KL on softmax at T, T^2).

Each measurement runs in its own process (so peak memory is that run's), the variants are
interleaved round after round, and medians over rounds are reported with their ratios:

    python benchmarks/speed.py --rounds=3

Writes `benchmarks/results/speed.json` and `docs/speed_benchmark.md`. Same models (the
`fashion_mnist` presets), data (the first N Fashion-MNIST training images), batch size and
optimizer for every variant; epoch time is the median of the epochs after the first.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 3, "Interleaved rounds.")
flags.DEFINE_integer("train_examples", 10000, "Training images.")
flags.DEFINE_integer("epochs", 4, "Epochs per run (the first is not timed).")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_string("worker", None, "Internal: run one variant and write its figures to --worker_out.")
flags.DEFINE_string("worker_out", None, "Internal.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST folder.")
flags.DEFINE_string("results", "benchmarks/results/speed.json", "Raw results.")
flags.DEFINE_string("doc", "docs/speed_benchmark.md", "Summary.")

VARIANTS = {
    "student_alone": "(a) the student trained on labels alone",
    "keras_kd": "(b) keras_kd.Distiller",
    "keras_kd_xla": "(b') keras_kd.Distiller, jit_compile=True",
    "keras_kd_cached": "(c) keras_kd.Distiller from a TeacherCache",
    "keras_distillation": "(d) keras.distillation.Distiller, LogitsDistillation(T, KLDivergence())",
    "keras_distillation_xla": "(d') keras.distillation.Distiller, jit_compile=True",
}
ALPHA, TEMPERATURE = 0.1, 4.0


def run_worker(variant):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import keras
    from timing import EpochTimer

    import keras_kd

    keras.utils.set_random_seed(0)
    (x, y), _ = keras_kd.datasets.fashion_mnist.load_data(FLAGS.data_dir)
    x, y = x[: FLAGS.train_examples], y[: FLAGS.train_examples]
    teacher = keras_kd.models.build_model("fashion_mnist", "teacher", x.shape[1:], 10)
    student = keras_kd.models.build_model("fashion_mnist", "student", x.shape[1:], 10)
    crossentropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    timer = EpochTimer()
    fit = {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size, "verbose": 0, "callbacks": [timer]}
    jit = {"jit_compile": True} if variant.endswith("_xla") else {}
    if variant == "student_alone":
        student.compile(optimizer="adam", loss=crossentropy, metrics=["accuracy"])
        student.fit(x, y, **fit)
    elif variant.startswith("keras_kd"):
        distiller = keras_kd.Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer="adam", metrics=["accuracy"], student_loss_fn=crossentropy,
                          distillation_loss_fn=keras.losses.KLDivergence(), alpha=ALPHA, temperature=TEMPERATURE, **jit)
        cache = keras_kd.TeacherCache.build(teacher, x) if variant == "keras_kd_cached" else None
        distiller.fit(x, y, teacher_cache=cache, **fit)
    else:
        from keras.distillation import Distiller, LogitsDistillation

        distiller = Distiller(teacher=teacher, student=student, student_loss_weight=ALPHA,
                              distillation_losses=LogitsDistillation(temperature=TEMPERATURE,
                                                                     loss=keras.losses.KLDivergence()))
        distiller.compile(optimizer="adam", loss=crossentropy, metrics=["accuracy"], **jit)
        distiller.fit(x, y, **fit)
    figures = {"epoch_seconds": timer.durations, "steady_epoch_seconds": timer.steady_epoch_seconds,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    with open(FLAGS.worker_out, "w") as handle:
        json.dump(figures, handle)


def main(_):
    if FLAGS.worker:
        return run_worker(FLAGS.worker)
    runs = {name: [] for name in VARIANTS}
    for round_index in range(FLAGS.rounds):
        for name in VARIANTS:
            with tempfile.TemporaryDirectory() as folder:
                out = os.path.join(folder, "figures.json")
                command = [sys.executable, os.path.abspath(__file__), f"--worker={name}", f"--worker_out={out}",
                           f"--train_examples={FLAGS.train_examples}", f"--epochs={FLAGS.epochs}",
                           f"--batch_size={FLAGS.batch_size}"]
                if FLAGS.data_dir:
                    command.append(f"--data_dir={FLAGS.data_dir}")
                subprocess.run(command, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                               stdout=subprocess.DEVNULL)
                with open(out) as handle:
                    runs[name].append(json.load(handle))
            print(f"round {round_index} {name}: {runs[name][-1]['steady_epoch_seconds']:.2f} s/epoch, "
                  f"{runs[name][-1]['peak_rss_mb']:.0f} MB", flush=True)
    summary = {name: {"epoch_seconds": statistics.median(r["steady_epoch_seconds"] for r in values),
                      "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in values)}
               for name, values in runs.items()}
    ratios = {
        "(b) / (d): keras-kd / keras.distillation": summary["keras_kd"]["epoch_seconds"]
        / summary["keras_distillation"]["epoch_seconds"],
        "(b') / (d'): both with XLA": summary["keras_kd_xla"]["epoch_seconds"]
        / summary["keras_distillation_xla"]["epoch_seconds"],
        "(b') / (d): keras-kd with XLA / keras.distillation without": summary["keras_kd_xla"][
            "epoch_seconds"] / summary["keras_distillation"]["epoch_seconds"],
        "(c) / (a): cached keras-kd / student alone": summary["keras_kd_cached"]["epoch_seconds"]
        / summary["student_alone"]["epoch_seconds"],
        "(b) / (a): keras-kd / student alone": summary["keras_kd"]["epoch_seconds"]
        / summary["student_alone"]["epoch_seconds"],
    }
    import keras

    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Keras {keras.__version__} (TensorFlow backend)"
    os.makedirs(os.path.dirname(FLAGS.results), exist_ok=True)
    with open(FLAGS.results, "w") as handle:
        json.dump({"machine": machine, "runs": runs, "summary": summary, "ratios": ratios,
                   "settings": {"train_examples": FLAGS.train_examples, "epochs": FLAGS.epochs,
                                "batch_size": FLAGS.batch_size, "rounds": FLAGS.rounds}}, handle, indent=2)
    lines = ["# Speed benchmark", "",
             f"Generated by `python benchmarks/speed.py --rounds={FLAGS.rounds}` on {machine}; raw figures in "
             f"`{FLAGS.results}`. Fashion-MNIST presets (teacher CNN 1.68M parameters, student CNN 55k), the first "
             f"{FLAGS.train_examples:,} training images, batch {FLAGS.batch_size}, Adam, alpha {ALPHA}, "
             f"T {TEMPERATURE}; "
             "each run in its own process, variants interleaved; medians over rounds of the median epoch time "
             "after the first epoch; peak memory is the process's maximum resident set (TensorFlow included).",
             "", "| variant | epoch time (s) | peak memory (MB) |", "|---|---:|---:|"]
    lines += [f"| {VARIANTS[name]} | {values['epoch_seconds']:.2f} | {values['peak_rss_mb']:.0f} |"
              for name, values in summary.items()]
    lines += ["", "| ratio | measured |", "|---|---:|"] + [f"| {key} | {value:.2f} |" for key, value in ratios.items()]
    with open(FLAGS.doc, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
