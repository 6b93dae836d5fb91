"""Benchmark: the memory a language model's distillation holds (issue 26, items 3 and 4).

Teacher outputs on disk (item 3):

A top-k teacher cache is built to a folder (`TopKTeacherCache.build(..., directory=...)`) for two
corpora of random token sequences, one 4 times the other. Then one fresh process per corpus and per
form fits the same student for one epoch on the cache, either loaded into memory (an in-memory
`TopKTeacherCache` of the same arrays) or memory-mapped from the folder, and reports the peak of its
anonymous resident memory (`RssAnon` in /proc/self/status, sampled every 5 ms) above what the
process held before it opened the cache. Pages of a memory-mapped file are the kernel's file cache,
dropped under memory pressure, so they are not counted: what counts is what the process must keep.
The models are untrained (memory does not depend on what they know).

The loss over chunks of positions (item 4): one training step of keras-hub GPT-2 models at GPT-2's
vocabulary (50,257 tokens), sequences of 256, compiled by XLA on the JAX backend, whose memory
analysis gives the step's peak of temporary buffers (besides its arguments: weights, optimizer
state, the batch). Whole sequence against `compile(loss_chunk_size=...)`; the step is also run
once from the same weights with SGD at rate 1, so that the weights it moves are the gradient:
the loss and the largest gradient difference are reported beside the memory.

    python benchmarks/language_model_memory.py

Writes benchmarks/results/language_model_memory.json (or `--results`) and the page
docs/language_model_memory_benchmark.md (`--page_only` rewrites it from the JSON).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "language_model_memory_benchmark.md")
SETTINGS = {"vocabulary": 512, "length": 64, "top_k": 16, "batch_size": 256, "examples": [16384, 65536]}
STEP = {
    "vocabulary": 50257,
    "length": 256,
    "batch_size": 8,
    "student_width": 64,
    "teacher_width": 128,
    "chunks": [None, 64, 32],
}
FORMS = ("in memory", "on disk")


def corpus(examples, settings):
    """Random token ids `(examples, length)`, the same for a given size in every process."""
    rng = np.random.default_rng(examples)
    return rng.integers(0, settings["vocabulary"], (examples, settings["length"])).astype("int32")


def language_model(width, seed, settings):
    from keras_kd.backend import keras

    keras.utils.set_random_seed(seed)
    ids = keras.Input((settings["length"],), dtype="int32")
    hidden = keras.layers.Embedding(settings["vocabulary"], width)(ids)
    return keras.Model(ids, keras.layers.Dense(settings["vocabulary"])(hidden))


def anonymous_resident_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no RssAnon line (Linux only).")


class PeakSampler:
    """The highest `anonymous_resident_bytes` seen by a thread polling every 5 ms."""

    def __init__(self):
        self.peak = anonymous_resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, anonymous_resident_bytes())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anonymous_resident_bytes())


def measure(form, folder, examples, settings):
    """One epoch on the cache in `folder`, held `form`; the figures of this process."""
    from keras_kd import Distiller, TopKTeacherCache
    from keras_kd.backend import keras
    from keras_kd.teacher import top_k_disk

    x = corpus(examples, settings)
    y = np.roll(x, -1, axis=1)
    teacher = language_model(32, 0, settings)
    student = language_model(8, 1, settings)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.5, temperature=1.0)
    before = anonymous_resident_bytes()
    start = time.perf_counter()
    with PeakSampler() as sampler:
        if form == "on disk":
            cache = TopKTeacherCache.load(folder)
        else:
            stored = top_k_disk.read(folder)
            stored.update(probabilities=np.array(stored["probabilities"]), ids=np.array(stored["ids"]), directory=None)
            cache = TopKTeacherCache(**stored)
        history = distiller.fit(x, y, batch_size=settings["batch_size"], epochs=1, teacher_cache=cache, verbose=0)
    return {
        "peak_above_start_bytes": sampler.peak - before,
        "seconds": time.perf_counter() - start,
        "loss": float(history.history["loss"][-1]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "language_model_memory.json"))
    parser.add_argument("--page", default=PAGE)
    parser.add_argument("--page_only", action="store_true", help="rewrite the page from the results file")
    parser.add_argument("--examples", default=",".join(map(str, SETTINGS["examples"])), help="corpus sizes")
    parser.add_argument("--measure", nargs=3, metavar=("FORM", "FOLDER", "EXAMPLES"), help=argparse.SUPPRESS)
    parser.add_argument("--step", nargs=2, metavar=("CHUNK", "WEIGHTS"), help=argparse.SUPPRESS)
    parser.add_argument("--step_vocabulary", type=int, default=STEP["vocabulary"], help="the step section's vocabulary")
    parser.add_argument(
        "--sections", default="disk,step", help="what to measure (disk, step); others are kept from --results"
    )
    args = parser.parse_args()
    if args.step:
        chunk, weights = args.step
        step = {**STEP, "vocabulary": args.step_vocabulary}
        print("RESULT " + json.dumps(measure_step(None if chunk == "none" else int(chunk), weights, step)))
        return
    if args.measure:
        form, folder, examples = args.measure
        print("RESULT " + json.dumps(measure(form, folder, int(examples), SETTINGS)))
        return
    if args.page_only:
        with open(args.results) as handle:
            write_page(json.load(handle), args.page)
        return
    settings = {**SETTINGS, "examples": [int(count) for count in args.examples.split(",")]}
    sections = set(args.sections.split(","))
    write_page(run(args.results, settings, {**STEP, "vocabulary": args.step_vocabulary}, sections), args.page)


def gpt2(width, layers, seed, step):
    import keras_hub

    from keras_kd.backend import keras

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=step["vocabulary"],
        num_layers=layers,
        num_heads=2,
        hidden_dim=width,
        intermediate_dim=2 * width,
        dropout=0.0,
        max_sequence_length=step["length"],
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def measure_step(chunk, weights_path, step):
    """One training step's compiled memory (JAX) and its loss; the weights after it go to `weights_path`."""
    import jax

    from keras_kd import Distiller
    from keras_kd.backend import keras

    student = gpt2(step["student_width"], 1, 1, step)
    teacher = gpt2(step["teacher_width"], 2, 2, step)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(1.0), alpha=0.5, temperature=2.0, loss_chunk_size=chunk)
    rng = np.random.default_rng(0)
    shape = (step["batch_size"], step["length"])
    ids = rng.integers(1, step["vocabulary"], shape).astype("int32")
    mask = np.arange(step["length"])[None, :] < rng.integers(step["length"] // 2, step["length"] + 1, (shape[0], 1))
    data = (
        {"token_ids": ids * mask, "padding_mask": mask.astype("int32")},
        np.roll(ids, -1, 1),
        mask.astype("float32"),
    )
    distiller.optimizer.build(distiller.trainable_variables)
    state = tuple(
        [v.value for v in variables]
        for variables in (
            distiller.trainable_variables,
            distiller.non_trainable_variables,
            distiller.optimizer.variables,
            distiller.metrics_variables,
        )
    )
    compiled = jax.jit(distiller.train_step).lower(state, data).compile()
    memory = compiled.memory_analysis()
    start = time.perf_counter()
    logs, new_state = compiled(state, data)
    jax.block_until_ready(new_state)
    np.savez(weights_path, *[np.asarray(value) for value in new_state[0]])
    largest_gradient = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(new_state[0], state[0]))
    return {
        "chunk": chunk,
        "temp_bytes": int(memory.temp_size_in_bytes),
        "argument_bytes": int(memory.argument_size_in_bytes),
        "output_bytes": int(memory.output_size_in_bytes),
        "step_seconds": time.perf_counter() - start,
        "largest_gradient": largest_gradient,
        "distillation_loss": float(logs["distillation_loss"]),
        "student_loss": float(logs["student_loss"]),
    }


def run_steps(step, scratch):
    """Each chunk size's step in a fresh JAX process; gradients compared with the whole sequence's."""
    rows = []
    start = None
    for chunk in step["chunks"]:
        weights = os.path.join(scratch, f"weights_{chunk}.npz")
        command = [sys.executable, os.path.abspath(__file__), "--step", str(chunk).lower(), weights]
        command.append(f"--step_vocabulary={step['vocabulary']}")
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        env.pop("TF_USE_LEGACY_KERAS", None)
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        row = json.loads(done.stdout.split("RESULT ", 1)[1])
        with np.load(weights) as moved:
            after = [moved[key] for key in sorted(moved.files, key=lambda name: int(name.split("_")[1]))]
        if start is None:
            start = after
        row["largest_weight_difference"] = max(float(np.abs(a - b).max()) for a, b in zip(after, start))
        print(row, flush=True)
        rows.append(row)
    return rows


def run(results_path, settings, step, sections):
    import keras_kd

    started = time.perf_counter()
    report = {}
    if os.path.exists(results_path) and sections != {"disk", "step"}:
        with open(results_path) as handle:
            report = json.load(handle)
    with tempfile.TemporaryDirectory() as scratch:
        if "disk" in sections:
            report.update(settings=settings, engine=keras_kd.ENGINE_DESCRIPTION, rows=disk_rows(settings, scratch))
        if "step" in sections:
            report["step"] = {"settings": step, "rows": run_steps(step, scratch)}
    report["wall_seconds"] = time.perf_counter() - started
    os.makedirs(os.path.dirname(results_path), exist_ok=True)
    with open(results_path, "w") as handle:
        json.dump(report, handle, indent=2)
    return report


def disk_rows(settings, scratch):
    """Per corpus size: the cache built to a folder, then one process per form fitting on it."""
    from keras_kd import TopKTeacherCache

    rows = []
    for examples in settings["examples"]:
        folder = os.path.join(scratch, f"cache_{examples}")
        build_start = time.perf_counter()
        cache = TopKTeacherCache.build(
            language_model(32, 0, settings),
            corpus(examples, settings),
            top_k=settings["top_k"],
            batch_size=settings["batch_size"],
            directory=folder,
            verbose=0,
        )
        row = {
            "examples": examples,
            "tokens": examples * settings["length"],
            "cache_bytes": cache.nbytes,
            "full_logits_bytes": cache.full_logits_nbytes,
            "build_seconds": time.perf_counter() - build_start,
        }
        for form in FORMS:
            command = [sys.executable, os.path.abspath(__file__), "--measure", form, folder, str(examples)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            row[form] = json.loads(done.stdout.split("RESULT ", 1)[1])
            print(examples, form, row[form], flush=True)
        rows.append(row)
    return rows


def _mib(count):
    return f"{count / 2**20:,.0f} MiB"


def write_page(report, page=PAGE):
    """The page from the report: every figure as measured."""
    from harness import write_doc

    settings, rows = report["settings"], report["rows"]
    small, large = rows[0], rows[-1]
    growth = {form: large[form]["peak_above_start_bytes"] - small[form]["peak_above_start_bytes"] for form in FORMS}
    lines = [
        "# Language models: the memory distillation holds",
        "",
        "Generated by `python benchmarks/language_model_memory.py` (raw figures in "
        "`benchmarks/results/language_model_memory.json`).",
        "",
        "## Teacher outputs on disk",
        "",
        f"On {report['engine']}. A top-k teacher cache (k {settings['top_k']}, vocabulary "
        f"{settings['vocabulary']:,}, sequences of "
        f"{settings['length']} tokens) built to a folder with `TopKTeacherCache.build(..., directory=...)`; then "
        "one fresh process per row and form fits the same student for one epoch (batch "
        f"{settings['batch_size']}) on the cache loaded into memory, or memory-mapped from the folder. Peak "
        "anonymous resident memory (`RssAnon`, sampled every 5 ms) above what the process held before it "
        "opened the cache: a memory-mapped file's pages are the kernel's file cache, dropped under memory "
        "pressure, and are not counted.",
        "",
        "| sequences | tokens | cache on disk | full logits would take | peak held, in memory | "
        "peak held, on disk | epoch, in memory | epoch, on disk |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['examples']:,} | {row['tokens']:,} | {_mib(row['cache_bytes'])} | "
            f"{_mib(row['full_logits_bytes'])} | {_mib(row['in memory']['peak_above_start_bytes'])} | "
            f"{_mib(row['on disk']['peak_above_start_bytes'])} | {row['in memory']['seconds']:.1f} s | "
            f"{row['on disk']['seconds']:.1f} s |"
        )
    lines += [
        "",
        f"From {small['examples']:,} to {large['examples']:,} sequences the cache grows by "
        f"{_mib(large['cache_bytes'] - small['cache_bytes'])}; the memory held at the peak grows by "
        f"{_mib(growth['in memory'])} with the cache in memory and by {_mib(growth['on disk'])} with it on disk.",
    ]
    if "step" in report:
        lines += step_section(report["step"])
    write_doc(page, lines)


def step_section(step):
    """The chunked loss's rows: one step's compiled memory, its loss and its gradient against the whole's."""
    settings, rows = step["settings"], step["rows"]
    whole = rows[0]
    lines = [
        "",
        "## The loss over chunks of positions",
        "",
        f"One training step of keras-hub `GPT2CausalLM` models at a vocabulary of {settings['vocabulary']:,} "
        f"tokens, {settings['batch_size']} sequences of {settings['length']} (some padded), compiled by XLA on "
        f"the JAX backend (CPU): a student of 1 layer x {settings['student_width']}, a live teacher of 2 layers x "
        f"{settings['teacher_width']}, alpha 0.5, T 2. `peak temporaries` is XLA's memory analysis of the "
        "compiled step: the buffers it allocates besides its arguments (weights, optimizer state, the batch: "
        f"{_mib(whole['argument_bytes'])}). Each step also ran once from the same weights with SGD at rate 1, so "
        "that the weights it moved are its gradient.",
        "",
        "| loss_chunk_size | peak temporaries | vs whole sequence | distillation loss | label loss | "
        "largest gradient difference (largest gradient) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        name = "None (whole sequence)" if row["chunk"] is None else str(row["chunk"])
        ratio = row["temp_bytes"] / whole["temp_bytes"]
        difference = "" if row is whole else f"{row['largest_weight_difference']:.1e} ({row['largest_gradient']:.1e})"
        lines.append(
            f"| {name} | {_mib(row['temp_bytes'])} | {ratio:.2f} | {row['distillation_loss']:.6f} | "
            f"{row['student_loss']:.6f} | {difference} |"
        )
    return lines


if __name__ == "__main__":
    main()
