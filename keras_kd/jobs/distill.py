"""`keras-kd distill`'s job: teacher, student from labels alone and distilled student, measured side by side."""

import os
import time

from keras_kd.backend import ENGINE_DESCRIPTION, keras
from keras_kd.jobs.backup import JobBackup
from keras_kd.jobs.report import measure_model
from keras_kd.jobs.report.curves import plot_curves, write_history
from keras_kd.jobs.teacher import prepare
from keras_kd.jobs.training import distilled_epoch_steps, student_builder, teacher_and_students


def run_distill(config, output_folder):
    """Run the main job and save the three models into `output_folder`.

    Returns:
        `(rows, metadata)`: a `ModelRow` per model, and what the run was.
    """
    config.validate()
    backup = JobBackup.of(config)
    if backup:  # `keras-kd distill` rerun after a kill: the same settings, or a clear error
        backup.check_settings()
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    records = {}
    split, (x_test, y_test), teacher = prepare(config, records=records)
    build = student_builder(config, split, teacher.output_shape[-1])
    scratch, kd_student = teacher_and_students(config, split, teacher, build_student=build, records=records)
    write_history(output_folder, records)
    title = "your data" if config.own_data else config.dataset
    plot_curves(records, os.path.join(output_folder, "curves.png"), f"{title}: training")

    compile_arguments = config.compile_arguments()
    models = (("teacher", teacher), ("student_scratch", scratch), ("student_kd", kd_student))
    rows = [
        measure_model(name, model, x_test, y_test, os.path.join(output_folder, f"{name}.keras"))
        for name, model in models
        if model is not None  # no student from labels when there are no labels
    ]
    metadata = {
        "engine": ENGINE_DESCRIPTION,
        "method": describe_method(config),
        "recipe": config.recipe,
        "seed": config.seed,
        # The distilled student's own alpha and T: the ones its search chose, if it searched.
        "alpha": records["student_kd"]["chosen"].get("alpha", compile_arguments["alpha"]),
        "temperature": records["student_kd"]["chosen"].get("temperature", compile_arguments["temperature"]),
        "labeled_examples": int(split.num_labeled),
        "unlabeled_examples": int(split.num_pool),
        "validation_examples": int(split.num_validation),
        "steps_per_epoch": distilled_epoch_steps(config, split),
        "patience": config.patience,
        "model_names": {role: record["model_name"] for role, record in records.items()} | {"teacher": teacher.name},
        "selection": {
            role: {
                key: record[key]
                for key in ("best_epoch", "validation_accuracy", "epochs_trained", "max_epochs", "trials", "chosen")
                if key in record
            }
            for role, record in records.items()
        },
        "learning_rate": config.learning_rate,
        "teacher_epochs": config.teacher_epochs if not config.teacher_path else None,
        "student_epochs": config.student_epochs,
        "batch_size": config.batch_size,
        "train_examples": int(split.num_train),
        "data": {
            name: getattr(config, name)
            for name in ("train", "unlabeled", "validation", "test")
            if getattr(config, name)
        }
        or config.dataset,
        "test_examples": int(len(x_test)),
        "wall_seconds": round(time.time() - started, 1),
        "cpu_count": os.cpu_count(),
    }
    return rows, metadata


def describe_method(config):
    """A short text naming the run's losses, for reports."""
    loss = config.compile_arguments()["distillation_loss_fn"]
    parts = [f"recipe: {config.recipe}", f"response: {loss}"]
    parts += [f"feature: {term['loss']} {term['teacher_layer']}->{term['student_layer']}" for term in config.features]
    if config.teacher_cache:
        parts.append("teacher cache")
    return "; ".join(str(part) for part in parts)
