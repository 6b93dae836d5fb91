"""`keras-kd SUBCOMMAND [--flags]`: dispatches to the subcommand's module."""

import importlib
import sys

SUBCOMMANDS = {
    "distill": ("keras_kd.cli.distill", "train a teacher, a student from scratch and a distilled student; report"),
    "compress": ("keras_kd.cli.compress", "distil, prune (cluster, QAT), export SavedModel and TFLite; report"),
    "tune": ("keras_kd.cli.tune", "search recipe, alpha, T and learning rate on validation data; write best.yaml"),
}


def usage():
    lines = ["usage: keras-kd SUBCOMMAND [--flags]   (keras-kd SUBCOMMAND --helpfull for its flags)", ""]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0 if len(argv) >= 2 else 2
    name = argv[1]
    if name not in SUBCOMMANDS:
        print(f"keras-kd: unknown subcommand {name!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.run([f"keras-kd {name}"] + argv[2:])


def entry_point():
    """The console script: exit with the subcommand's status."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
