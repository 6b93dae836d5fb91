"""The runs that the command line, the examples and the benchmarks share, above the building blocks.

- `config`: one settings dataclass per job (`DistillConfig`, `CompressConfig`, `TuneConfig`);
  the CLI's flags are generated from their fields. Imports no TensorFlow.
- `data`: a built-in data set's split, or your own files streamed and checked.
- `teacher`: the run's teacher, loaded and checked or trained, and the split it meets.
- `training`: the student from labels alone and the distilled student, under one rule.
- `sweep`: the one search both students run alike, on validation.
- `distill`, `compress`, `tune`: `keras-kd distill`, `compress` and `tune`.
- `seeds`: a job over several seeds, with the mean and spread of each model's figures.
- `backup` (a killed run resumes), `output_folder` (outputs staged, moved in at the end),
  `report/` (tables, plots, measurements), `log` (the jobs' lines on stdout).

Nothing below (`keras_kd.distiller`, `losses`, `compression`, ...) imports a job.
"""
