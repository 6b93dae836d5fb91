"""Whole fits and epochs, peak memory and accuracy, side by side: the student alone, keras-kd with its
default settings (the teacher's logits kept), keras-kd with the teacher run on every step (float32 and
a bfloat16 teacher), keras-kd from a TeacherCache, function matching with the teacher running and from
an AugmentedTeacherCache, and Keras's own `keras.distillation.Distiller` configured correctly (KL on
softmax at T, T^2), with the physical limit beside them: the student's own fit plus one teacher pass.

    python benchmarks/speed.py --rounds=3

One teacher is trained first (a few epochs, so that its soft labels mean something) and saved; the
function-matching cache is built once from it (its build time is reported apart: a one-time cost
of `views` teacher passes over the data). Then each variant runs in its own process (so peak
memory is that run's), the variants interleaved round after round; medians over rounds are
reported with their ratios and each target. Accuracy is the student's on the first
`--test_examples` test images after the run's epochs, next to the float32 path it replaces.

Writes `benchmarks/results/speed.json` and `docs/speed_benchmark.md`. Same teacher, student
architecture and initial weights (seeded), data (the first N Fashion-MNIST training images),
batch size and optimizer for every variant; epoch time is the median of the epochs after the first.
"""

import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

from absl import app, flags
from harness import define_round_flags, run_worker_process, write_doc

FLAGS = flags.FLAGS
define_round_flags("speed", rounds=3, batch_size=128, train_examples=10000, epochs=5)
flags.DEFINE_integer("test_examples", 2000, "Test images for the accuracy.")
flags.DEFINE_integer("teacher_epochs", 3, "Epochs of the shared teacher's training.")
flags.DEFINE_integer("views", 4, "Stored views per example of the function-matching cache.")
flags.DEFINE_integer("top_k", 5, "Probabilities kept per view.")
flags.DEFINE_string("workdir", None, "Internal: the teacher and the cache.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST folder.")
flags.DEFINE_enum(
    "student",
    "small",
    ["small", "preset"],
    "small: a CNN of a few thousand parameters (4 and 8 filters, no hidden dense layer), the size of the student the "
    "speed issue measured, whose own training is a small part of a distillation's cost; preset: the fashion_mnist "
    "preset student (170k parameters), whose own training is about half of it.",
)
flags.DEFINE_bool("shared_machine", False, "Say on the page that other jobs shared the cores during the run.")

VARIANTS = {
    "student_alone": "(a) the student trained on labels alone",
    "keras_kd": "(b) keras_kd.Distiller, default settings (the teacher's logits kept)",
    "keras_kd_live": "(b1) keras_kd.Distiller(teacher_cache=False): float32 teacher every step",
    "keras_kd_bf16": "(b2) keras_kd.Distiller(teacher_dtype='bfloat16')",
    "keras_kd_cached": "(c) keras_kd.Distiller from a TeacherCache",
    "keras_distillation": "(d) keras.distillation.Distiller, LogitsDistillation(T, KLDivergence())",
    "fm": "(e) function matching (MixUp each step, T 1, alpha 0), teacher running",
    "fm_cached": "(f) function matching from an AugmentedTeacherCache (stored MixUp views, top-k)",
}
ALPHA, TEMPERATURE = 0.1, 4.0
# (what is timed: the whole "fit" or the "epoch" after the first, numerator, denominator, description,
# target or None)
RATIOS = [
    ("fit", "keras_kd", "keras_distillation", "keras-kd default / keras.distillation, whole fits", 0.5),
    ("fit", "physical_limit", "keras_distillation", "the physical limit / keras.distillation, whole fits", None),
    ("fit", "keras_kd_live", "keras_distillation", "keras-kd, teacher every step / keras.distillation", 0.95),
    ("epoch", "keras_kd_cached", "student_alone", "keras-kd with a TeacherCache / student alone", 1.05),
    ("fit", "keras_kd_bf16", "keras_distillation", "keras-kd with a bfloat16 teacher / keras.distillation", None),
    ("epoch", "fm_cached", "student_alone", "cached function matching / student alone", 1.3),
    ("epoch", "fm", "student_alone", "function matching, teacher running / student alone", None),
    ("fit", "keras_kd", "student_alone", "keras-kd default / student alone, whole fits", None),
]
LETTERS = {
    "student_alone": "a",
    "keras_kd": "b",
    "keras_kd_live": "b1",
    "keras_kd_bf16": "b2",
    "physical_limit": "a + one teacher pass",
    "keras_kd_cached": "c",
    "keras_distillation": "d",
    "fm": "e",
    "fm_cached": "f",
}


def _data():
    import keras_kd

    (x, y), (x_test, y_test) = keras_kd.datasets.fashion_mnist.load_data(FLAGS.data_dir)
    return (
        x[: FLAGS.train_examples],
        y[: FLAGS.train_examples],
        x_test[: FLAGS.test_examples],
        y_test[: FLAGS.test_examples],
    )


def _student(x):
    import keras

    import keras_kd

    keras.utils.set_random_seed(0)  # the same initial weights in every variant
    if FLAGS.student == "small":
        return keras_kd.models.build_cnn(x.shape[1:], 10, filters=(4, 8), dense_units=0, name="student")
    return keras_kd.models.build_model("fashion_mnist", "student", x.shape[1:], 10)


def _reset_peak_memory():
    """Reset the process's peak resident set (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_memory_mb():
    """VmHWM, the peak resident set since the last reset, in MB (None where /proc is missing)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run_worker(variant):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import keras
    from timing import EpochTimer

    import keras_kd
    from keras_kd.teacher.augmented import AugmentedTeacherCache

    x, y, x_test, y_test = _data()
    teacher = keras.models.load_model(os.path.join(FLAGS.workdir, "teacher.keras"))
    student = _student(x)
    crossentropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    _reset_peak_memory()  # from here on: the peak of training, not of loading the data set
    timer = EpochTimer()
    fit = {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size, "verbose": 0, "callbacks": [timer]}
    build_seconds = 0.0
    fit_started, fit_cpu_started = time.perf_counter(), time.process_time()
    if variant == "student_alone":
        student.compile(optimizer="adam", loss=crossentropy, metrics=["accuracy"])
        student.fit(x, y, **fit)
    elif variant == "keras_distillation":
        from keras.distillation import Distiller, LogitsDistillation

        distiller = Distiller(
            teacher=teacher,
            student=student,
            student_loss_weight=ALPHA,
            distillation_losses=LogitsDistillation(temperature=TEMPERATURE, loss=keras.losses.KLDivergence()),
        )
        distiller.compile(optimizer="adam", loss=crossentropy, metrics=["accuracy"])
        distiller.fit(x, y, **fit)
    else:
        dtype = "bfloat16" if variant == "keras_kd_bf16" else None
        distiller = keras_kd.Distiller(student=student, teacher=teacher, teacher_dtype=dtype)
        if variant.startswith("fm"):
            distiller.compile(optimizer="adam", metrics=["accuracy"], recipe="function_matching")
        else:
            distiller.compile(
                optimizer="adam",
                metrics=["accuracy"],
                student_loss_fn=crossentropy,
                distillation_loss_fn=keras.losses.KLDivergence(),
                alpha=ALPHA,
                temperature=TEMPERATURE,
            )
        cache = None  # default settings: the teacher's logits kept where they can be
        if variant in ("keras_kd_live", "keras_kd_bf16", "fm"):
            cache = False
        elif variant == "keras_kd_cached":
            start = time.perf_counter()
            cache = keras_kd.TeacherCache.build(teacher, x)
            build_seconds = time.perf_counter() - start
            fit_started, fit_cpu_started = time.perf_counter(), time.process_time()
        elif variant == "fm_cached":
            cache = AugmentedTeacherCache.load(os.path.join(FLAGS.workdir, "fm_cache.npz"))
        distiller.fit(x, y, teacher_cache=cache, **fit)
    fit_seconds, fit_cpu_seconds = time.perf_counter() - fit_started, time.process_time() - fit_cpu_started
    predictions = keras.ops.convert_to_numpy(student.predict(x_test, batch_size=512, verbose=0))
    figures = {
        "epoch_seconds": timer.durations,
        "steady_epoch_seconds": timer.steady_epoch_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "training_peak_rss_mb": _peak_memory_mb(),
        "epoch_cpu_seconds": timer.cpu_durations,
        "steady_epoch_cpu_seconds": timer.steady_epoch_cpu_seconds,
        "test_accuracy": float((predictions.argmax(-1) == y_test).mean()),
        "cache_build_seconds": build_seconds,
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
    }
    with open(FLAGS.worker_out, "w") as handle:
        json.dump(figures, handle)


def prepare(workdir):
    """Train and save the shared teacher; build the function-matching cache; measure the loss tolerances."""
    import keras
    import numpy as np

    import keras_kd
    from keras_kd import losses as kd_losses
    from keras_kd.data.keys import INPUTS_KEY, TEACHER_LOGITS_KEY
    from keras_kd.teacher.augmented import AugmentedTeacherCache, MixUpViews
    from keras_kd.teacher.precision import TeacherPass

    x, y, x_test, y_test = _data()
    keras.utils.set_random_seed(1)
    teacher = keras_kd.models.build_model("fashion_mnist", "teacher", x.shape[1:], 10)
    teacher.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    teacher.fit(x, y, epochs=FLAGS.teacher_epochs, batch_size=FLAGS.batch_size, verbose=0)
    teacher_accuracy = float(teacher.evaluate(x_test, y_test, verbose=0)[1])
    teacher.save(os.path.join(workdir, "teacher.keras"))
    teacher.predict(x[:256], batch_size=256, verbose=0)  # traced before it is timed
    start, cpu_start = time.perf_counter(), time.process_time()
    teacher.predict(x, batch_size=256, verbose=0)
    teacher_pass = {"teacher_pass_seconds": time.perf_counter() - start, "teacher_pass_cpu_seconds": 0.0}
    teacher_pass["teacher_pass_cpu_seconds"] = time.process_time() - cpu_start
    start = time.perf_counter()
    cache = AugmentedTeacherCache.build(
        teacher, x, MixUpViews(1.0), views=FLAGS.views, top_k=FLAGS.top_k, temperature=1.0, batch_size=512
    )
    build_seconds = time.perf_counter() - start
    cache.save(os.path.join(workdir, "fm_cache.npz"))
    # Loss tolerances on the first 2,048 examples, against a fresh student (the loss at the start of training).
    student, loss = _student(x), kd_losses.get("kd")
    sample = x[:2048]
    float32 = keras.ops.convert_to_numpy(teacher(sample, training=False))
    bfloat16 = keras.ops.convert_to_numpy(TeacherPass([teacher], "bfloat16")(0, sample))
    s_logits = student(sample, training=False)
    tolerance = {}
    for temperature in (1.0, TEMPERATURE):
        full = float(loss(float32, s_logits, temperature=temperature))
        tolerance[f"bfloat16_teacher_loss_relative_change_T{temperature:g}"] = (
            abs(float(loss(bfloat16, s_logits, temperature=temperature)) - full) / full
        )
    tolerance["bfloat16_teacher_max_abs_logit_change"] = float(np.abs(bfloat16 - float32).max())
    tolerance["bfloat16_teacher_top1_agreement"] = float((bfloat16.argmax(-1) == float32.argmax(-1)).mean())
    packed = next(iter(cache.dataset(x[:], batch_size=2048, shuffle=False, view=0)))
    views = np.asarray(packed[INPUTS_KEY])
    s_views = student(views, training=False)
    full = float(loss(teacher(views, training=False), s_views, temperature=1.0))
    cached = float(loss(np.asarray(packed[TEACHER_LOGITS_KEY]), s_views, temperature=1.0))
    tolerance["top_k_cache_loss_relative_change_T1"] = abs(cached - full) / full
    tolerance["top_k_cache_dropped_mass"] = cache.dropped_mass
    tolerance["fm_cache_megabytes"] = (
        cache.probabilities.nbytes + cache.classes.nbytes + sum(v.nbytes for v in cache.params.values())
    ) / 2**20
    return {
        "teacher_params": int(teacher.count_params()),
        "student_params": int(student.count_params()),
        "teacher_test_accuracy": teacher_accuracy,
        "fm_cache_build_seconds": build_seconds,
        **teacher_pass,
        **tolerance,
    }


def main(_):
    if FLAGS.worker:
        return run_worker(FLAGS.worker)
    runs = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as workdir:
        prepared = prepare(workdir)
        print(json.dumps(prepared), flush=True)
        for round_index in range(FLAGS.rounds):
            for name in VARIANTS:
                figures = run_worker_process(
                    __file__,
                    name,
                    os.path.join(workdir, "figures.json"),
                    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                    workdir=workdir,
                    train_examples=FLAGS.train_examples,
                    test_examples=FLAGS.test_examples,
                    epochs=FLAGS.epochs,
                    student=FLAGS.student,
                    batch_size=FLAGS.batch_size,
                    data_dir=FLAGS.data_dir,
                )
                runs[name].append(figures)
                last = runs[name][-1]
                print(
                    f"round {round_index} {name}: {last['steady_epoch_seconds']:.2f} s/epoch "
                    f"({last['steady_epoch_cpu_seconds']:.2f} CPU s), "
                    f"{last['training_peak_rss_mb']:.0f} MB, accuracy {last['test_accuracy']:.4f}",
                    flush=True,
                )
    keys = ("steady_epoch_seconds", "steady_epoch_cpu_seconds", "fit_seconds", "fit_cpu_seconds")
    keys += ("peak_rss_mb", "training_peak_rss_mb", "test_accuracy", "cache_build_seconds")
    summary = {name: {key: statistics.median(r[key] for r in values) for key in keys} for name, values in runs.items()}
    # The least a 5-epoch fit can cost: the student's own fit and one pass of the teacher over the data.
    summary["physical_limit"] = {
        "fit_seconds": summary["student_alone"]["fit_seconds"] + prepared["teacher_pass_seconds"],
        "fit_cpu_seconds": summary["student_alone"]["fit_cpu_seconds"] + prepared["teacher_pass_cpu_seconds"],
    }
    ratios = []
    for measure, top, bottom, text, target in RATIOS:
        wall, cpu = ("fit_seconds", "fit_cpu_seconds") if measure == "fit" else ("steady_epoch_seconds",) * 2
        cpu = "steady_epoch_cpu_seconds" if measure == "epoch" else cpu
        value = summary[top][wall] / summary[bottom][wall]
        ratios.append(
            {
                "ratio": f"({LETTERS[top]}) / ({LETTERS[bottom]})",
                "timed": "whole fit" if measure == "fit" else "epoch after the first",
                "what": text,
                "measured": value,
                "cpu_time_ratio": summary[top][cpu] / summary[bottom][cpu],
                "target": target,
                "met": None if target is None else value <= target,
            }
        )
    write(runs, summary, ratios, prepared)


def _pipeline_lines():
    """The input pipeline's share of the step, from `benchmarks/pipeline_profile.py`'s results file."""
    path = os.path.join(os.path.dirname(FLAGS.results), "pipeline_profile.json")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        profile = json.load(handle)
    step = profile["step_ms"] / profile["profiled_steps"]
    return [
        "- The input pipeline (`keras_kd.data.pipeline.make_dataset`, profiled with "
        f"`benchmarks/pipeline_profile.py`): the step waited {profile['wait_ms_per_step']:.2f} ms per step for its "
        f"batch, {100 * profile['wait_share']:.2f}% of the {step:.0f} ms step (`{os.path.relpath(path)}`)."
    ]


def write(runs, summary, ratios, prepared):
    import keras

    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores (AVX512_BF16, no AMX), Keras {keras.__version__} "
        "(TensorFlow backend)"
    )
    settings = {
        "train_examples": FLAGS.train_examples,
        "test_examples": FLAGS.test_examples,
        "epochs": FLAGS.epochs,
        "student": FLAGS.student,
        "teacher_epochs": FLAGS.teacher_epochs,
        "batch_size": FLAGS.batch_size,
        "rounds": FLAGS.rounds,
        "views": FLAGS.views,
        "top_k": FLAGS.top_k,
        "alpha": ALPHA,
        "temperature": TEMPERATURE,
    }
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
    with open(FLAGS.results, "w") as handle:
        json.dump(
            {
                "machine": machine,
                "settings": settings,
                "prepared": prepared,
                "summary": summary,
                "ratios": ratios,
                "runs": runs,
            },
            handle,
            indent=2,
        )
    accuracy_base = {"keras_kd": "keras_kd_live", "keras_kd_bf16": "keras_kd_live", "keras_kd_cached": "keras_kd_live"}
    accuracy_base["fm_cached"] = "fm"
    lines = [
        "# Speed benchmark",
        "",
        f"Generated by `python benchmarks/speed.py --rounds={FLAGS.rounds} --student={FLAGS.student}` on {machine}; "
        f"raw figures in `{FLAGS.results}`. Fashion-MNIST: the preset teacher (a CNN of "
        f"{prepared['teacher_params']:,} parameters, "
        f"trained {FLAGS.teacher_epochs} epochs first: test accuracy {prepared['teacher_test_accuracy']:.4f}); "
        f"student: {'a small CNN' if FLAGS.student == 'small' else 'the preset CNN'} of "
        f"{prepared['student_params']:,} parameters (`--student={FLAGS.student}`); the first "
        f"{FLAGS.train_examples:,} training images, batch {FLAGS.batch_size}, Adam, {FLAGS.epochs} epochs, alpha "
        f"{ALPHA}, T {TEMPERATURE} (function matching: alpha 0, T 1, MixUp); each run in its own process, variants "
        "interleaved; medians over rounds of the whole fit's wall and CPU time (a cache built inside `fit` by "
        "default counts; an explicit TeacherCache's build is apart) and of the median epoch time after the first "
        f"epoch; one teacher pass over the data took {prepared['teacher_pass_seconds']:.2f} s. Peak memory is the "
        "process's maximum resident set after the data are loaded (VmHWM reset before the models are built; "
        "TensorFlow included) and over the whole process (dominated by loading Fashion-MNIST); accuracy on the first "
        f"{FLAGS.test_examples:,} test images after the run."
        + (
            " The machine's cores were shared with other jobs during the run (--shared_machine), so wall times "
            "carry noise; the ratios compare runs interleaved side by side, and the CPU time (all the process's "
            "threads) is the cross-check that contention moves least."
            if FLAGS.shared_machine
            else " Nothing else ran on the machine."
        ),
        "",
        f"| variant | {FLAGS.epochs}-epoch fit (s) | its CPU time (s) | epoch time (s) | CPU time per epoch (s) "
        "| peak memory in training (MB) | peak memory of the process (MB) | test accuracy | teacher-every-step path |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    limit = summary["physical_limit"]
    for name, values in summary.items():
        if name == "physical_limit":
            continue
        base = accuracy_base.get(name)
        reference = f"{summary[base]['test_accuracy']:.4f} ({LETTERS[base]})" if base else ""
        lines.append(
            f"| {VARIANTS[name]} | {values['fit_seconds']:.1f} | {values['fit_cpu_seconds']:.1f} | "
            f"{values['steady_epoch_seconds']:.2f} | {values['steady_epoch_cpu_seconds']:.2f} | "
            f"{values['training_peak_rss_mb']:.0f} | "
            f"{values['peak_rss_mb']:.0f} | "
            f"{values['test_accuracy']:.4f} | {reference} |"
        )
    lines += [
        f"| the physical limit: (a) plus one teacher pass | {limit['fit_seconds']:.1f} | "
        f"{limit['fit_cpu_seconds']:.1f} | | | | | | |",
        "",
        "Ratios of wall-clock times (the targets are judged on these), with the ratio of CPU times "
        "(all threads; far less moved by other jobs on the shared cores) in brackets:",
        "",
        "| ratio (what is timed; target) | measured |",
        "|---|---:|",
    ]
    for ratio in ratios:
        verdict = (
            "" if ratio["target"] is None else (f", target <= {ratio['target']}: {'met' if ratio['met'] else 'missed'}")
        )
        lines.append(
            f"| {ratio['ratio']}: {ratio['what']} ({ratio['timed']}{verdict}; "
            f"CPU time {ratio['cpu_time_ratio']:.2f}) | "
            f"{ratio['measured']:.2f} |"
        )
    lines += [
        "",
        "One-time costs and numerical checks (`prepared` in the JSON):",
        "",
        f"- Function-matching cache: {FLAGS.views} MixUp views per example, top {FLAGS.top_k} of 10 "
        f"probabilities: built in {prepared['fm_cache_build_seconds']:.1f} s ({FLAGS.views} teacher passes over the "
        f"data), {prepared['fm_cache_megabytes']:.2f} MB; mass left out "
        f"{prepared['top_k_cache_dropped_mass']:.4f}; KD loss (T 1) from the cache vs. the full teacher on the same "
        f"views: relative change {prepared['top_k_cache_loss_relative_change_T1']:.4f}.",
        f"- bfloat16 teacher: distillation loss relative change "
        f"{prepared['bfloat16_teacher_loss_relative_change_T1']:.4f} at T 1 and "
        f"{prepared[f'bfloat16_teacher_loss_relative_change_T{TEMPERATURE:g}']:.4f} at T {TEMPERATURE:g} "
        f"(tolerance tested: 0.02); largest logit change {prepared['bfloat16_teacher_max_abs_logit_change']:.3f}; "
        f"top-1 agreement with float32 {prepared['bfloat16_teacher_top1_agreement']:.4f}.",
        *_pipeline_lines(),
    ]
    write_doc(FLAGS.doc, lines)


if __name__ == "__main__":
    app.run(main)
