"""Measuring models and writing the report that `keras-kd distill` and `compress` produce."""

from keras_kd.jobs.output_folder import staged_output_dir
from keras_kd.jobs.report.measure import accuracy, latency_ms, measure_model, model_file_size
from keras_kd.jobs.report.writer import ModelRow, format_table, write_report

__all__ = [
    "ModelRow",
    "accuracy",
    "format_table",
    "latency_ms",
    "measure_model",
    "model_file_size",
    "staged_output_dir",
    "write_report",
]
