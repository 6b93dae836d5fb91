"""Subcommands' flags: each parses its own `FlagValues` (no clashes), and config files merge in."""

import sys

from absl import flags

HELP_FLAGS = ("-h", "--help", "--helpfull", "--helpshort", "-help", "-helpfull")


def parse(flag_values, argv):
    """Parse `argv` into `flag_values`; on a bad flag print the error and usage, return False.

    `--help` (or `--helpfull`, `-h`) prints the subcommand's flags and exits with status 0.
    """
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(f"usage: {argv[0]} [--flags]\n\nflags:\n{flag_values.get_help(include_special_flags=False)}")
        sys.exit(0)
    try:
        extra = flag_values(argv)
    except flags.Error as error:
        print(f"{argv[0]}: {error}\n\nflags:\n{flag_values.main_module_help() or flag_values}",
              file=sys.stderr)
        return False
    if len(extra) > 1:
        print(f"{argv[0]}: unexpected arguments {extra[1:]}", file=sys.stderr)
        return False
    import_tensorflow_quietly()  # before the subcommand imports its job
    return True


def load_yaml(path, flag_fields=None):
    """A config file's settings: `yaml.safe_load` (no tags that run code), flag names accepted."""
    import yaml

    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file holds a mapping of settings; found {type(values).__name__}.")
    return {(flag_fields or {}).get(key, key): value for key, value in values.items()}


def build_config(flag_values, flag_fields, config_class):
    """Defaults, then the YAML file of --config, then the flags given on the command line."""
    values = {field: flag_values[flag].value for flag, field in flag_fields.items()}
    if flag_values["config"].value:
        values.update(load_yaml(flag_values["config"].value, flag_fields))
        values.update({field: flag_values[flag].value for flag, field in flag_fields.items()
                       if flag_values[flag].present})
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


def run_job(name, flag_values, build, job, columns=None):
    """Build and validate the config, run `job(config, staging)` in a staged output folder,
    write the report and print its table. Bad input: message on stderr, exit status 2."""
    from keras_kd.report import format_table, staged_output_dir, write_report
    from keras_kd.report.writer import MODEL_COLUMNS

    columns = columns or MODEL_COLUMNS
    try:
        config = build()
        config.validate()
    except (ValueError, RuntimeError, OSError) as error:
        print(f"keras-kd {name}: {error}", file=sys.stderr)
        return 2
    output_dir = flag_values["output_dir"].value
    problem = output_dir_problem(output_dir, "overwrite" in flag_values and flag_values["overwrite"].value)
    if problem:
        print(f"keras-kd {name}: {problem}", file=sys.stderr)
        return 2
    from keras_kd.validation import UsageError

    try:
        with staged_output_dir(output_dir) as staging:
            rows, metadata = job(config, staging)
            write_report(staging, config.dataset, rows, metadata, columns=columns)
    except UsageError as error:  # found in the data, before any training
        print(f"keras-kd {name}: {error}", file=sys.stderr)
        return 2
    print(f"\n{format_table(rows, columns)}\n\nReport and outputs written to {output_dir}")
    return 0


def output_dir_problem(output_dir, overwrite):
    """Why `output_dir` cannot take this run's outputs, or None: nothing of the user's is replaced unasked."""
    import os

    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return f"--output_dir={output_dir} is a file, not a folder; choose a folder."
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        return (f"--output_dir={output_dir} already holds files; choose a new or empty folder, or pass "
                "--overwrite to replace the files keras-kd writes there (other files are left alone).")
    return None
