"""Subcommands' flags, generated from the jobs' config dataclasses (`keras_kd.jobs.config`).

Each subcommand parses its own `FlagValues` (no clashes between subcommands). A flag exists for
every config field with a `help` text, typed by the field's annotation; `--config` (a YAML
file of the same settings), `--output_dir`, `--overwrite` and `--verbose` are the run's own.
"""

import dataclasses
import sys

from absl import flags

HELP_FLAGS = ("-h", "--help", "--helpfull", "--helpshort", "-help", "-helpfull")
_DEFINE = {
    str: flags.DEFINE_string,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    bool: flags.DEFINE_bool,
    list: flags.DEFINE_list,
}


def define_flags(config_class, flag_values=None, defaults=None, output_dir=None, output_help=None, overwrite_help=None):
    """A flag per setting of `config_class` (`defaults` override its defaults), `--config` and
    `--verbose`; with `output_dir`, also `--output_dir` and `--overwrite`. Returns the `FlagValues`
    (a new one unless given: each subcommand parses its own)."""
    flag_values = flags.FlagValues() if flag_values is None else flag_values
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    for flag, name in config_class.flag_fields().items():
        field = fields[name]
        default = (defaults or {}).get(name, _default(field))
        help_text, choices, minimum = (field.metadata[key] for key in ("help", "choices", "minimum"))
        if choices:
            flags.DEFINE_enum(flag, default, list(choices), help_text, flag_values=flag_values)
        elif minimum is not None:
            _DEFINE[field.type](flag, default, help_text, lower_bound=minimum, flag_values=flag_values)
        else:
            _DEFINE[field.type](flag, default, help_text, flag_values=flag_values)
    flags.DEFINE_string(
        "config",
        None,
        "A YAML file of settings (keys: the flags' names, plus the YAML-only "
        "settings of docs/cli.md); flags given on the command line override it.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "verbose",
        (defaults or {}).get("verbose"),
        "Keras verbosity: 0 quiet, 1 progress bar, 2 a line an epoch (default: 1 on a terminal, else 2).",
        flag_values=flag_values,
    )
    if output_dir is not None:
        flags.DEFINE_string("output_dir", output_dir, output_help, flag_values=flag_values)
        flags.DEFINE_bool(
            "overwrite",
            False,
            overwrite_help
            or "Replace the files keras-kd writes in a non-empty --output_dir (other files are left alone).",
            flag_values=flag_values,
        )
    return flag_values


def _default(field):
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def parse(flag_values, argv):
    """Parse `argv` into `flag_values`; on a bad flag print the error and usage, return False.

    `--help` (or `--helpfull`, `-h`) prints the subcommand's flags and exits with status 0.
    """
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(f"usage: {argv[0]} [--flags]\n\nflags:\n{_listing(flag_values, argv[0])}")
        sys.exit(0)
    try:
        extra = flag_values(argv)
    except flags.Error as error:
        print(f"{argv[0]}: {error}\n\nflags:\n{_listing(flag_values, argv[0])}", file=sys.stderr)
        return False
    if len(extra) > 1:
        print(f"{argv[0]}: unexpected arguments {extra[1:]}", file=sys.stderr)
        return False
    import_tensorflow_quietly()  # before the subcommand imports its job
    return True


def _listing(flag_values, program):
    return flag_values.get_help(include_special_flags=False).replace(f"{__name__}:", f"{program}:")


def build_config(flag_values, config_class):
    """Defaults, then the YAML file of --config, then the flags given on the command line."""
    flag_fields = config_class.flag_fields()
    values = {field: flag_values[flag].value for flag, field in flag_fields.items()}
    if flag_values["config"].value:
        values.update(config_class.read_yaml(flag_values["config"].value))
        values.update(
            {field: flag_values[flag].value for flag, field in flag_fields.items() if flag_values[flag].present}
        )
    verbose = flag_values["verbose"].value
    values["verbose"] = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    return config_class.from_dict(values)


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (CUDA probing, oneDNN notes) left out.

    On a CPU machine they read as failures (`E0000 ... failed call to cuInit`), and since
    TensorFlow 2.16 they come through absl, which `TF_CPP_MIN_LOG_LEVEL` no longer silences;
    so the process's stderr is pointed at /dev/null while TensorFlow starts. A user who set
    `TF_CPP_MIN_LOG_LEVEL` sees everything.
    """
    import os

    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def run_subcommand(name, argv, flag_values, config_class, job):
    """Parse, build and validate the config, check `--output_dir`, then `job(config, output_dir)`.

    Bad settings, or data that cannot work (a `UsageError`, found before any training): the
    message on stderr and exit status 2. Returns the exit status.
    """
    if not parse(flag_values, argv):
        return 2
    from keras_kd.checks import UsageError

    output_dir = flag_values["output_dir"].value
    try:
        config = build_config(flag_values, config_class)
        config.validate()
        problem = output_dir_problem(output_dir, flag_values["overwrite"].value)
        if problem:
            raise ValueError(problem)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"keras-kd {name}: {error}", file=sys.stderr)
        return 2
    try:
        job(config, output_dir)
    except UsageError as error:
        print(f"keras-kd {name}: {error}", file=sys.stderr)
        return 2
    return 0


def reported(run, columns=None):
    """A job that runs `run(config, folder) -> (rows, metadata)` in a staging folder, writes the
    report beside its outputs, moves them all into `output_dir` at once, and prints the table."""

    def job(config, output_dir):
        from keras_kd.jobs.report import format_table, staged_output_dir, write_report
        from keras_kd.jobs.report.writer import MODEL_COLUMNS

        with staged_output_dir(output_dir) as staging:
            rows, metadata = run(config, staging)
            write_report(staging, config.dataset, rows, metadata, columns=columns or MODEL_COLUMNS)
        print(f"\n{format_table(rows, columns or MODEL_COLUMNS)}\n\nReport and outputs written to {output_dir}")

    return job


def output_dir_problem(output_dir, overwrite):
    """Why `output_dir` cannot take this run's outputs, or None: nothing of the user's is replaced unasked."""
    import os

    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return f"--output_dir={output_dir} is a file, not a folder; choose a folder."
    # A killed run's backup alone is no one's file: the rerun resumes from it.
    if os.path.isdir(output_dir) and set(os.listdir(output_dir)) - {"backup"} and not overwrite:
        return (
            f"--output_dir={output_dir} already holds files; choose a new or empty folder, or pass "
            "--overwrite to replace the files keras-kd writes there (other files are left alone)."
        )
    return None
