"""Parse a subcommand's absl flags from its own `FlagValues`, so subcommands never clash."""

import sys

from absl import flags


def parse(flag_values, argv):
    """Parse `argv` into `flag_values`; on a bad flag print the error and usage, return False."""
    try:
        extra = flag_values(argv)
    except flags.Error as error:
        print(f"{argv[0]}: {error}\n\nflags:\n{flag_values.main_module_help() or flag_values}",
              file=sys.stderr)
        return False
    if len(extra) > 1:
        print(f"{argv[0]}: unexpected arguments {extra[1:]}", file=sys.stderr)
        return False
    return True
