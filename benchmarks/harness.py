"""What the benchmarks share: the flags and worker processes of those that time variants side by side in
interleaved rounds, and writing a summary page. No Keras import: a parent process only starts the
workers, each with its own backend."""

import json
import os
import subprocess
import sys

from absl import flags


def define_round_flags(name, rounds, batch_size, train_examples, epochs=3):
    """The flags every interleaved-rounds benchmark takes; results in benchmarks/results/NAME.json and
    docs/NAME_benchmark.md. Each variant runs in a worker process (`--worker`), one after another."""
    flags.DEFINE_integer("rounds", rounds, "Interleaved rounds.")
    flags.DEFINE_integer("train_examples", train_examples, "Training images.")
    flags.DEFINE_integer("epochs", epochs, "Epochs per run (the first is not timed).")
    flags.DEFINE_integer("batch_size", batch_size, "Batch size (global: split over the devices).")
    flags.DEFINE_string("worker", None, "Internal: run one variant and write its figures to --worker_out.")
    flags.DEFINE_string("worker_out", None, "Internal.")
    flags.DEFINE_string("results", f"benchmarks/results/{name}.json", "Raw results.")
    flags.DEFINE_string("doc", f"docs/{name}_benchmark.md", "Summary.")


def run_worker_process(script, variant, out, env=None, **flag_values):
    """Run one variant of `script` in its own process (`--worker=variant`, figures written to `out`,
    plus the flags given); returns the figures. A failing worker raises with its stderr."""
    command = [sys.executable, os.path.abspath(script), f"--worker={variant}", f"--worker_out={out}"]
    command += [f"--{name}={value}" for name, value in flag_values.items() if value is not None]
    result = subprocess.run(command, env=env or dict(os.environ), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{result.stderr[-3000:]}")
    with open(out) as handle:
        return json.load(handle)


def write_doc(path, lines, echo=True):
    """Write the summary page `path` (Markdown `lines`) and, with `echo`, print it."""
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    if echo:
        print("\n".join(lines))
