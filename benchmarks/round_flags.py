"""The flags of the benchmarks that time variants side by side in interleaved rounds (no Keras import:
the parent process only starts the workers, each with its own backend)."""

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
