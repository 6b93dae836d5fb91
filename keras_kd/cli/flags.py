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
    from keras_kd.cli.quiet import import_tensorflow_quietly

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
