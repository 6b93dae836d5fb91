"""The runs that the command line, the examples and the benchmarks share, above the building blocks.

- `config`: one settings dataclass per job (`DistillConfig`, `CompressConfig`, `TuneConfig`);
  the CLI's flags are generated from their fields. Imports no TensorFlow.
- `data`: a built-in data set's split, or your own files streamed and checked.
- `training`: the teacher, the student from labels alone and the distilled student.
- `distill`, `compress`, `tune`: `keras-kd distill`, `compress` and `tune`.
- `seeds`: a job over several seeds, with the mean and spread of each model's figures.

Nothing below (`keras_kd.distiller`, `losses`, `compression`, ...) imports a job.
"""
