"""Epoch time of one distillation run per Keras 3 backend, and against the number of devices.

Each variant runs in its own process (devices are fixed when TensorFlow or JAX starts):
TensorFlow, JAX and PyTorch on one device; `tf.distribute.MirroredStrategy` over 2 and 4
logical CPU devices; the Keras distribution API's `DataParallel` on JAX over 2 and 4
devices (`--xla_force_host_platform_device_count`). Variants are interleaved round after
round and the medians are reported relative to TensorFlow on one device:

    python benchmarks/scaling.py --rounds=2

Writes `benchmarks/results/scaling.json` and `docs/scaling_benchmark.md`. Logical CPU
devices share the machine's cores, so on a CPU machine the device columns measure the
overhead of distribution, not a speed-up; run it on a multi-GPU machine for the speed-up.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags
from round_flags import define_round_flags

FLAGS = flags.FLAGS
define_round_flags("scaling", rounds=2, batch_size=128, train_examples=10000)  # Fashion-MNIST, or digits if absent
flags.DEFINE_string("variants", None, "Comma-separated subset of the variants (default: all).")

# name: (backend, distribution, devices)
VARIANTS = {
    "tensorflow_1": ("tensorflow", None, 1),
    "jax_1": ("jax", None, 1),
    "torch_1": ("torch", None, 1),
    "tensorflow_mirrored_2": ("tensorflow", "MirroredStrategy", 2),
    "tensorflow_mirrored_4": ("tensorflow", "MirroredStrategy", 4),
    "jax_data_parallel_2": ("jax", "DataParallel", 2),
    "jax_data_parallel_4": ("jax", "DataParallel", 4),
}
BASELINE = "tensorflow_1"


def worker_environment(variant):
    backend, distribution, devices = VARIANTS[variant]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    if backend == "jax":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def load_data():
    import numpy as np

    import keras_kd

    try:
        (x, y), _ = keras_kd.datasets.fashion_mnist.load_data(download=False)
        name = "fashion_mnist"
    except (FileNotFoundError, OSError):
        (x, y), _ = keras_kd.datasets.digits.load_data()
        name = "digits"
    return name, np.asarray(x[: FLAGS.train_examples]), np.asarray(y[: FLAGS.train_examples])


def run_worker(variant):
    backend, distribution, devices = VARIANTS[variant]
    if distribution == "MirroredStrategy":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import contextlib

    import keras
    from timing import EpochTimer

    import keras_kd

    dataset, x, y = load_data()
    scope = contextlib.nullcontext()
    if distribution == "MirroredStrategy":
        scope = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)]).scope()
    elif distribution == "DataParallel":
        scope = keras.distribution.DataParallel(devices=keras.distribution.list_devices("cpu")).scope()
    keras.utils.set_random_seed(0)
    with scope:
        teacher = keras_kd.models.build_model(dataset, "teacher", x.shape[1:], 10)
        student = keras_kd.models.build_model(dataset, "student", x.shape[1:], 10)
        distiller = keras_kd.Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
    timer = EpochTimer()
    history = distiller.fit(x, y, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=0, callbacks=[timer])
    return {
        "epoch_seconds": timer.steady_epoch_seconds,
        "dataset": dataset,
        "final_loss": float(history.history["loss"][-1]),
    }


def run_variant(variant):
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "out.json")
        command = [
            sys.executable,
            os.path.abspath(__file__),
            f"--worker={variant}",
            f"--worker_out={out}",
            f"--train_examples={FLAGS.train_examples}",
            f"--epochs={FLAGS.epochs}",
            f"--batch_size={FLAGS.batch_size}",
        ]
        result = subprocess.run(command, env=worker_environment(variant), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{variant} failed:\n{result.stderr[-3000:]}")
        with open(out) as handle:
            return json.load(handle)


def summarize(runs):
    medians = {name: statistics.median(r["epoch_seconds"] for r in results) for name, results in runs.items()}
    base = medians[BASELINE]
    return {
        name: {
            "epoch_seconds": seconds,
            "relative_to_tensorflow_1": seconds / base,
            "backend": VARIANTS[name][0],
            "distribution": VARIANTS[name][1] or "none",
            "devices": VARIANTS[name][2],
            "final_loss": runs[name][-1]["final_loss"],
        }
        for name, seconds in medians.items()
    }


def write_doc(summary, meta):
    lines = [
        "# Scaling: backends and devices",
        "",
        "Generated by `python benchmarks/scaling.py` "
        f"(rounds={meta['rounds']}, {meta['train_examples']} {meta['dataset']} examples, global batch "
        f"{meta['batch_size']}, median epoch after the first). Machine: {meta['machine']}, "
        f"{meta['cpus']} CPU cores, no GPU. Logical devices share these cores: the device rows measure the "
        "cost of distributing a step, not a speed-up.",
        "",
        "| variant | backend | distribution | devices | epoch (s) | relative to TensorFlow, 1 device |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {row['backend']} | {row['distribution']} | {row['devices']} | "
            f"{row['epoch_seconds']:.2f} | {row['relative_to_tensorflow_1']:.2f}x |"
        )
    lines += [
        "",
        "The same Distiller (hinton recipe, the dataset's preset teacher and student) in every row; "
        "`tests/test_distribution.py` checks that each distributed row computes one device's losses and "
        "weights.",
    ]
    with open(FLAGS.doc, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def main(argv):
    del argv
    if FLAGS.worker:
        figures = run_worker(FLAGS.worker)
        with open(FLAGS.worker_out, "w") as handle:
            json.dump(figures, handle)
        return
    names = FLAGS.variants.split(",") if FLAGS.variants else list(VARIANTS)
    if BASELINE not in names:
        names.insert(0, BASELINE)
    runs = {name: [] for name in names}
    for round_index in range(FLAGS.rounds):
        for name in names:
            runs[name].append(run_variant(name))
            print(f"round {round_index + 1} {name}: {runs[name][-1]['epoch_seconds']:.2f} s/epoch", flush=True)
    summary = summarize(runs)
    meta = {
        "rounds": FLAGS.rounds,
        "train_examples": FLAGS.train_examples,
        "batch_size": FLAGS.batch_size,
        "epochs": FLAGS.epochs,
        "dataset": runs[BASELINE][0]["dataset"],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    os.makedirs(os.path.dirname(FLAGS.results), exist_ok=True)
    with open(FLAGS.results, "w") as handle:
        json.dump({"meta": meta, "summary": summary, "runs": runs}, handle, indent=2)
    write_doc(summary, meta)
    print(open(FLAGS.doc).read())


if __name__ == "__main__":
    app.run(main)
