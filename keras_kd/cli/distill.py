"""`keras-kd distill`: the main job on the embedded default (digits), Fashion-MNIST, FSDD or your data.

Trains a teacher (or loads `--teacher`), the student from labels alone and the student by
distillation, prints the table and writes `report.json`, `report.md`, `report.png` and the
three `.keras` models into `--output_dir`, all at once at the end. Until then the run's progress
is kept in `--output_dir/backup/`: rerun the same command after a kill and it goes on where it
stopped (`keras_kd.jobs.backup`).
"""

import dataclasses
import os

from keras_kd.cli.flags import define_flags
from keras_kd.cli.subcommand import reported, run_subcommand
from keras_kd.jobs.config import DistillConfig

FLAGS = define_flags(DistillConfig, output_dir="runs/distill", output_help="Where the report and models go.")


def run(argv):
    def job(config, output_dir):
        from keras_kd.jobs.backup import JobBackup
        from keras_kd.jobs.distill import run_distill
        from keras_kd.training.resume import backup_dir

        config = dataclasses.replace(config, backup_dir=backup_dir(os.path.abspath(output_dir)))
        reported(run_distill)(config, output_dir)
        JobBackup.of(config).remove()  # the outputs are in place: nothing left to resume

    return run_subcommand("distill", argv, FLAGS, DistillConfig, job)
