"""Benchmark: the memory a language model's distillation holds (issue 26, item 3: teacher outputs on disk).

A top-k teacher cache is built to a folder (`TopKTeacherCache.build(..., directory=...)`) for two
corpora of random token sequences, one 4 times the other. Then one fresh process per corpus and per
form fits the same student for one epoch on the cache, either loaded into memory (an in-memory
`TopKTeacherCache` of the same arrays) or memory-mapped from the folder, and reports the peak of its
anonymous resident memory (`RssAnon` in /proc/self/status, sampled every 5 ms) above what the
process held before it opened the cache. Pages of a memory-mapped file are the kernel's file cache,
dropped under memory pressure, so they are not counted: what counts is what the process must keep.
The models are untrained (memory does not depend on what they know).

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
    from keras_kd import Distiller, TopKTeacherCache, top_k_disk
    from keras_kd.backend import keras

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
    args = parser.parse_args()
    if args.measure:
        form, folder, examples = args.measure
        print("RESULT " + json.dumps(measure(form, folder, int(examples), SETTINGS)))
        return
    if args.page_only:
        with open(args.results) as handle:
            write_page(json.load(handle), args.page)
        return
    settings = {**SETTINGS, "examples": [int(count) for count in args.examples.split(",")]}
    write_page(run(args.results, settings), args.page)


def run(results_path, settings):
    import keras_kd
    from keras_kd import TopKTeacherCache

    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
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
    report = {
        "settings": settings,
        "engine": keras_kd.ENGINE_DESCRIPTION,
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    os.makedirs(os.path.dirname(results_path), exist_ok=True)
    with open(results_path, "w") as handle:
        json.dump(report, handle, indent=2)
    return report


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
        f"Generated by `python benchmarks/language_model_memory.py` ({report['engine']}; raw figures in "
        f"`benchmarks/results/language_model_memory.json`, {report['wall_seconds'] / 60:.0f} min).",
        "",
        "## Teacher outputs on disk",
        "",
        f"A top-k teacher cache (k {settings['top_k']}, vocabulary {settings['vocabulary']:,}, sequences of "
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
    write_doc(page, lines)


if __name__ == "__main__":
    main()
