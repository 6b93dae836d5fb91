"""A subcommand's run: flags parsed into its job's config, everything checked before any training
(exit status 2 and one line on stderr otherwise), the job run in a staging folder, its report
written and the outputs moved into `--output_dir` at once."""

import sys

from keras_kd.cli.flags import build_config, parse


def run_subcommand(name, argv, flag_values, config_class, job):
    """Parse, build and validate the config, check `--output_dir`, then `job(config, output_dir)`.

    Bad settings, or data that cannot work (a `UsageError`, found before any training): the
    message on stderr and exit status 2. Returns the exit status.
    """
    if not parse(flag_values, argv):
        return 2
    from keras_kd.checks import UsageError
    from keras_kd.jobs.output_folder import output_dir_problem

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
