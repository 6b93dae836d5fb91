"""What the non-finite record costs each training step, side by side in one run.

Every `Distiller.fit` records, inside the step, the first step whose loss or float input is NaN or
infinite, and `StopOnNonFiniteLoss` reads that record every 32 batches and at each epoch's end: a
bad batch anywhere in an epoch stops the run with its index, with no host synchronisation per
batch. This benchmark measures that cost: the same fit with the record (keras-kd as shipped) and
without it (the step's record and the callback taken out), in interleaved rounds, each run in its
own process. Target: at most 2 % of the step.

    python benchmarks/nonfinite_record.py

Default settings are the costliest case for the record: keras-kd's default keeps the teacher's
logits (one teacher pass per fit), so a step is the student's alone and the record's share is at
its largest. Same teacher, student architecture and initial weights (seeded), data (the first N
Fashion-MNIST training images), batch size and optimizer in both variants; an epoch's time is the
median of the epochs after the first (tracing). Writes `benchmarks/results/nonfinite_record_<backend>.json`
and `docs/nonfinite_record_benchmark.md`.
"""

import json
import os
import platform
import statistics
import sys
import tempfile

from absl import app, flags
from harness import define_round_flags, run_worker_process, write_doc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
define_round_flags("nonfinite_record", rounds=7, batch_size=128, train_examples=6000, epochs=8)
flags.DEFINE_string("data_dir", None, "Fashion-MNIST folder.")
VARIANTS = ("with_record", "without_record")
TARGET = 1.02


def run_worker(variant):
    """One fit of the variant; returns its steady epoch time per step (wall and CPU)."""
    import keras
    from timing import EpochTimer

    import keras_kd
    from keras_kd.backend import ops
    from keras_kd.data import checks as data_checks

    (x, y), _ = keras_kd.datasets.fashion_mnist.load_data(FLAGS.data_dir)
    x, y = x[: FLAGS.train_examples], y[: FLAGS.train_examples]
    keras.utils.set_random_seed(0)  # the same teacher and initial student weights in both variants
    teacher = keras_kd.models.build_model("fashion_mnist", "teacher", x.shape[1:], 10)
    student = keras_kd.models.build_model("fashion_mnist", "student", x.shape[1:], 10)

    class WithoutRecord(keras_kd.Distiller):
        def _note_finite(self, total, x):  # only the step count, which the library's resume reads
            self._steps_trained.assign(ops.convert_to_tensor(self._steps_trained) + 1)

    if variant == "without_record":
        data_checks.StopOnNonFiniteLoss = keras.callbacks.Callback  # `fit` adds a callback that does nothing
        distiller = WithoutRecord(student=student, teacher=teacher)
    else:
        distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.5, temperature=4.0)
    timer = EpochTimer()
    distiller.fit(x, y, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, callbacks=[timer], verbose=0)
    steps = -(-len(x) // FLAGS.batch_size)
    return {
        "step_ms": 1000 * timer.steady_epoch_seconds / steps,
        "step_cpu_ms": 1000 * timer.steady_epoch_cpu_seconds / steps,
        "steps_per_epoch": steps,
    }


def main(_):
    if FLAGS.worker:
        with open(FLAGS.worker_out, "w") as handle:
            json.dump(run_worker(FLAGS.worker), handle)
        return
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    runs = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(FLAGS.rounds):
            order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]  # neither variant always first
            for variant in order:
                figures = run_worker_process(
                    __file__,
                    variant,
                    os.path.join(folder, f"{variant}.json"),
                    data_dir=FLAGS.data_dir,
                    train_examples=FLAGS.train_examples,
                    epochs=FLAGS.epochs,
                    batch_size=FLAGS.batch_size,
                )
                runs[variant].append(figures)
                print(f"round {round_index + 1}, {variant}: {figures['step_ms']:.3f} ms/step", flush=True)
    median = {v: {k: statistics.median(run[k] for run in runs[v]) for k in ("step_ms", "step_cpu_ms")} for v in runs}
    ratio = median["with_record"]["step_ms"] / median["without_record"]["step_ms"]
    cpu_ratio = median["with_record"]["step_cpu_ms"] / median["without_record"]["step_cpu_ms"]
    spread = max(abs(run["step_ms"] / median[v]["step_ms"] - 1) for v in runs for run in runs[v])
    results = {
        "backend": backend,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "settings": {
            "rounds": FLAGS.rounds,
            "epochs": FLAGS.epochs,
            "batch_size": FLAGS.batch_size,
            "train_examples": FLAGS.train_examples,
            "steps_per_epoch": runs["with_record"][0]["steps_per_epoch"],
        },
        "runs": runs,
        "median": median,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "spread": spread,
        "target": TARGET,
        "met": ratio <= TARGET,
    }
    # One file per backend unless --results names one.
    path = FLAGS.results if FLAGS["results"].present else f"benchmarks/results/nonfinite_record_{backend}.json"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(results, handle, indent=2)
    write_doc(FLAGS.doc, page(results, os.path.basename(path)))


def page(results, results_name):
    settings, median = results["settings"], results["median"]
    return [
        "# What the non-finite record costs a step",
        "",
        "Generated by `python benchmarks/nonfinite_record.py` "
        f"(`benchmarks/results/{results_name}`, backend {results['backend']}, {results['machine']}). "
        "Every `fit` records in the step the first batch whose loss or float input is NaN or infinite, and "
        "reads the record every 32 batches: the run stops at a bad batch anywhere in an epoch, naming it. "
        f"Both variants: the Fashion-MNIST student distilled with keras-kd's defaults (teacher logits kept), "
        f"{settings['train_examples']} images, batch {settings['batch_size']}, {settings['steps_per_epoch']} "
        f"steps an epoch, {settings['epochs']} epochs (the first not timed), {settings['rounds']} interleaved "
        "rounds, each run in its own process; medians over the rounds.",
        "",
        "| variant | ms/step | CPU ms/step | runs' range, ms/step |",
        "|---|---:|---:|---:|",
        *(
            f"| {v.replace('_', ' ')} | {median[v]['step_ms']:.3f} | {median[v]['step_cpu_ms']:.3f} | "
            f"{min(r['step_ms'] for r in results['runs'][v]):.3f} to "
            f"{max(r['step_ms'] for r in results['runs'][v]):.3f} |"
            for v in VARIANTS
        ),
        "",
        f"With the record / without: **{results['ratio']:.3f}x** wall time (CPU time {results['cpu_ratio']:.3f}x); "
        f"target at most {results['target']:.2f}x: **{'met' if results['met'] else 'not met'}**. "
        f"One run's ms/step moved by up to {results['spread']:.0%} from its variant's median: a difference "
        "smaller than that is not resolved by this run.",
    ]


if __name__ == "__main__":
    app.run(main)
