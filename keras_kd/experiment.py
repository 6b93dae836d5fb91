"""The main job: teacher, student from labels alone, student by distillation, measured side by side.

`keras-kd distill`, the examples and the benchmarks all run this one function, so their
figures are produced the same way.
"""

import dataclasses
import os
import time

import numpy as np

from keras_kd import datasets, models
from keras_kd import losses as kd_losses
from keras_kd.backend import ENGINE_DESCRIPTION, keras
from keras_kd.callbacks import DistillationScheduler
from keras_kd.distiller import Distiller
from keras_kd.feature_distillation import FeatureDistillation
from keras_kd.inputs import with_indices
from keras_kd.losses import LogitsCrossentropy
from keras_kd.report import ModelRow, accuracy, latency_ms, model_file_size
from keras_kd.teacher_cache import TeacherCache
from keras_kd.utils import count_params, strip_output_activation
from keras_kd.validation import check_outputs_are_logits


@dataclasses.dataclass
class DistillConfig:
    """Settings of one run; the CLI's flags map onto these fields one to one."""

    dataset: str = "digits"
    data_dir: str = None
    teacher_path: str = None
    teacher_epochs: int = 40
    student_epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 1e-3
    alpha: float = 0.1
    temperature: float = 4.0
    seed: int = 0
    verbose: int = 2
    # The method: a distillation-loss spec (`{"name": "dkd", "beta": 8.0}`), feature terms
    # (`FeatureDistillation` arguments), schedules for alpha and T, and teacher caching.
    distillation_loss: object = None
    features: list = dataclasses.field(default_factory=list)
    alpha_schedule: object = None
    temperature_schedule: object = None
    teacher_cache: bool = False

    @classmethod
    def from_dict(cls, values):
        """A config from a dict (a parsed YAML file); unknown keys raise a ValueError listing the known ones."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}; known keys: {', '.join(sorted(known))}.")
        return cls(**values)

    def validate(self):
        if self.dataset not in datasets.LOADERS:
            raise ValueError(
                f"Unknown dataset {self.dataset!r}; known datasets: "
                f"{', '.join(sorted(datasets.LOADERS))}."
            )
        for name in ("teacher_epochs", "student_epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1; received {getattr(self, name)!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0; received {self.learning_rate!r}.")
        if self.teacher_path is not None and not os.path.exists(self.teacher_path):
            raise ValueError(f"`teacher` path {self.teacher_path!r} does not exist.")
        if self.distillation_loss is not None:
            kd_losses.get(self.distillation_loss)  # raises, listing the known names
        for term in self.features:
            if not isinstance(term, dict) or not {"loss", "teacher_layer", "student_layer"} <= set(term):
                raise ValueError(
                    f"Each feature term needs `loss`, `teacher_layer` and `student_layer`; received {term!r}."
                )
        if self.teacher_cache and self.features:
            raise ValueError("`teacher_cache` holds logits only; it cannot serve feature terms.")


def _log(message, verbose):
    if verbose:
        print(message, flush=True)


def load_teacher(path, input_shape, num_classes, verbose=1):
    """A saved teacher, checked against the data; a final softmax is stripped (with a notice)."""
    teacher = keras.models.load_model(path, compile=False)
    if tuple(teacher.input_shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"The teacher at {path!r} takes inputs of shape {teacher.input_shape[1:]}, but the "
            f"data has shape {tuple(input_shape)}. Pass a teacher trained on this dataset."
        )
    if teacher.output_shape[-1] != num_classes:
        raise ValueError(
            f"The teacher at {path!r} has {teacher.output_shape[-1]} outputs; the data has "
            f"{num_classes} classes."
        )
    try:
        check_outputs_are_logits(teacher, "teacher")
    except ValueError:
        _log("The saved teacher ends in softmax; using its logits instead.", verbose)
        teacher = strip_output_activation(teacher)
    return teacher


def train_on_labels(model, x, y, config, epochs, validation_data=None):
    """Train `model` on labels alone with the settings every row of the report shares."""
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=LogitsCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(
        x, y, epochs=epochs, batch_size=config.batch_size, validation_data=validation_data, verbose=config.verbose,
    )
    return model


def _feature_terms(config, num_examples):
    terms = []
    for spec in config.features:
        spec = dict(spec)
        loss = spec["loss"]
        if isinstance(loss, dict) and loss.get("name") == "crd":
            loss = {"num_examples": num_examples, **loss}  # CRD's memory has a row per example
        spec["loss"] = loss
        terms.append(FeatureDistillation(**spec))
    return terms


def distill(student, teacher, x, y, config, validation_data=None):
    """Train `student` from `teacher` with the run's method, alpha and temperature."""
    terms = _feature_terms(config, len(x))
    distiller = Distiller(student=student, teacher=teacher, features=terms or None)
    distiller.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        metrics=["accuracy"],
        distillation_loss_fn=config.distillation_loss,
        alpha=config.alpha,
        temperature=config.temperature,
    )
    callbacks = []
    if config.alpha_schedule is not None or config.temperature_schedule is not None:
        callbacks.append(DistillationScheduler(alpha=config.alpha_schedule, temperature=config.temperature_schedule))
    cache = TeacherCache.build(teacher, x) if config.teacher_cache else None
    if any(getattr(term.loss, "needs_indices", False) for term in terms):
        x = with_indices(x)  # validation data stays plain: CRD reports 0 there (no memory rows)
    distiller.fit(
        x, y, epochs=config.student_epochs, batch_size=config.batch_size,
        validation_data=validation_data, verbose=config.verbose, callbacks=callbacks,
        teacher_cache=cache,
    )
    return distiller.student


def load_split(config):
    """The run's data set: `(x_train, y_train), (x_test, y_test)`."""
    loader_args = {"data_dir": config.data_dir} if config.dataset != "digits" else {}
    return datasets.load(config.dataset, **loader_args)


def teacher_and_students(config, x_train, y_train, validation=None, total_steps=3):
    """The teacher (loaded or trained), then the student from labels alone and the distilled
    student, both from the same initial weights so that only their training differs."""
    verbose = config.verbose
    input_shape, num_classes = x_train.shape[1:], int(np.max(y_train)) + 1
    if config.teacher_path:
        _log(f"[1/{total_steps}] loading the teacher from {config.teacher_path}", verbose)
        teacher = load_teacher(config.teacher_path, input_shape, num_classes, verbose)
    else:
        _log(f"[1/{total_steps}] training the teacher for {config.teacher_epochs} epochs", verbose)
        teacher = models.build_model(config.dataset, "teacher", input_shape, num_classes)
        train_on_labels(teacher, x_train, y_train, config, config.teacher_epochs, validation)
    scratch = models.build_model(config.dataset, "student", input_shape, num_classes, "student_scratch")
    initial_weights = scratch.get_weights()
    _log(f"[2/{total_steps}] training the student from labels alone for {config.student_epochs} epochs", verbose)
    train_on_labels(scratch, x_train, y_train, config, config.student_epochs, validation)
    _log(f"[3/{total_steps}] distilling the student for {config.student_epochs} epochs", verbose)
    kd_student = models.build_model(config.dataset, "student", input_shape, num_classes, "student_kd")
    kd_student.set_weights(initial_weights)
    distill(kd_student, teacher, x_train, y_train, config, validation)
    return teacher, scratch, kd_student


def run_distill(config, output_folder):
    """Run the main job and save the three models into `output_folder`.

    Returns:
        `(rows, metadata)`: a `ModelRow` per model, and what the run was.
    """
    config.validate()
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    (x_train, y_train), (x_test, y_test) = load_split(config)
    teacher, scratch, kd_student = teacher_and_students(config, x_train, y_train, (x_test, y_test), total_steps=3)

    rows = []
    for name, model in (("teacher", teacher), ("student_scratch", scratch), ("student_kd", kd_student)):
        rows.append(
            ModelRow(
                name=name,
                params=count_params(model),
                size_bytes=model_file_size(model, os.path.join(output_folder, f"{name}.keras")),
                accuracy=accuracy(model, x_test, y_test),
                latency_ms=latency_ms(model, x_test[:1]),
            )
        )
    metadata = {
        "engine": ENGINE_DESCRIPTION,
        "method": describe_method(config),
        "seed": config.seed,
        "alpha": config.alpha,
        "temperature": config.temperature,
        "teacher_epochs": config.teacher_epochs if not config.teacher_path else None,
        "student_epochs": config.student_epochs,
        "batch_size": config.batch_size,
        "train_examples": int(len(x_train)),
        "test_examples": int(len(x_test)),
        "wall_seconds": round(time.time() - started, 1),
        "cpu_count": os.cpu_count(),
    }
    return rows, metadata


def describe_method(config):
    """A short text naming the run's losses, for reports."""
    parts = [f"response: {config.distillation_loss or 'kd'}"]
    parts += [f"feature: {term['loss']} {term['teacher_layer']}->{term['student_layer']}" for term in config.features]
    if config.teacher_cache:
        parts.append("teacher cache")
    return "; ".join(str(part) for part in parts)
