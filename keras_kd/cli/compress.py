"""`keras-kd compress`: teacher -> distilled student -> pruned (clustered, QAT) student -> exports.

Writes into `--output_dir`, all at once at the end: `report.{json,md,png}` with a row per
stage measured on its exported artifact, and `exports/` with the teacher's SavedModel, the
students' TFLite files, the final int8 TFLite file and the final student's SavedModel in TF
Serving's layout (`exports/saved_model/<model_name>/1`). Until then the run's progress is kept in
`--output_dir/backup/`: rerun the same command after a kill and it goes on in the stage where it
stopped (`keras_kd.jobs.backup`).
"""

import dataclasses
import os

from keras_kd.cli.flags import define_flags
from keras_kd.cli.subcommand import reported, run_subcommand
from keras_kd.jobs.config import CompressConfig

FLAGS = define_flags(CompressConfig, output_dir="runs/compress", output_help="Where the report and exports go.")


def run(argv):
    def job(config, output_dir):
        from keras_kd.jobs.backup import JobBackup
        from keras_kd.jobs.compress import STAGE_COLUMNS, run_compress
        from keras_kd.training.resume import backup_dir

        config = dataclasses.replace(config, backup_dir=backup_dir(os.path.abspath(output_dir)))
        reported(run_compress, STAGE_COLUMNS)(config, output_dir)
        JobBackup.of(config).remove()  # the outputs are in place: nothing left to resume

    return run_subcommand("compress", argv, FLAGS, CompressConfig, job)
