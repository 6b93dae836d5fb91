"""The main job: teacher, student from labels alone, student by distillation, measured side by side.

`keras-kd distill`, the examples and the benchmarks all run this one function, so their
figures are produced the same way.
"""

import dataclasses
import math
import os
import time

import numpy as np

from keras_kd import datasets, models, recipes
from keras_kd import losses as kd_losses
from keras_kd.backend import ENGINE_DESCRIPTION, keras
from keras_kd.callbacks import DistillationScheduler, DurationEstimate
from keras_kd.datasets import user_data
from keras_kd.distiller import Distiller
from keras_kd.feature_distillation import FeatureDistillation
from keras_kd.inputs import with_indices
from keras_kd.losses import LogitsCrossentropy
from keras_kd.report import ModelRow, accuracy, latency_ms, model_file_size
from keras_kd.teacher_cache import TeacherCache
from keras_kd.transfer_data import transfer_set
from keras_kd.utils import count_params, strip_output_activation
from keras_kd.validation import UsageError, check_outputs_are_logits, validate_alpha


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
    # The method: a named recipe; alpha, temperature and distillation_loss left None take its values.
    recipe: str = recipes.DEFAULT_RECIPE
    alpha: float = None
    temperature: float = None
    # The data: the share of the training examples whose labels the students get (the rest is
    # the unlabelled pool that the teacher scores), and the share held out for validation.
    labeled_fraction: float = 0.1
    validation_split: float = 0.1
    # Your own data and student instead of a built-in data set (see keras_kd.datasets.user_data):
    # the students get every label of `train`; `unlabeled` is the pool the teacher scores.
    train: str = None
    unlabeled: str = None
    validation: str = None
    test: str = None
    student_path: str = None
    label_column: str = "label"
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

    def _validate_own_data(self):
        if not (self.train and self.test):
            raise ValueError("Your own data needs both `train` (labelled) and `test`; `unlabeled` and "
                             "`validation` are optional.")
        if not self.teacher_path:
            raise ValueError("With your own data, give the trained teacher: `teacher` (a .keras file).")
        if not self.student_path:
            raise ValueError(f"With your own data, give the student: `student` (an untrained .keras file, or a "
                             f"preset: {', '.join(sorted(models.PRESETS))}).")
        for name in ("train", "unlabeled", "validation", "test"):
            path = getattr(self, name)
            if path is not None:
                try:
                    user_data.data_kind(path)
                except ValueError as error:
                    raise ValueError(f"`{name}`: {error}") from None
        self._validate_student()
        if recipes.get(self.recipe).assistant:
            raise ValueError("The teacher_assistant recipe builds its assistant from a data set's preset; with "
                             "your own data, distil an assistant first and pass it as the teacher.")

    def _validate_student(self):
        if self.student_path not in models.PRESETS and not os.path.isfile(self.student_path):
            raise ValueError(f"`student` {self.student_path!r} is neither a .keras file nor a preset "
                             f"({', '.join(sorted(models.PRESETS))}).")

    def compile_arguments(self):
        """`Distiller.compile` arguments: the recipe's, overridden by the settings given."""
        arguments = recipes.get(self.recipe).compile_arguments()
        for key, value in (("alpha", self.alpha), ("temperature", self.temperature),
                           ("distillation_loss_fn", self.distillation_loss)):
            if value is not None:
                arguments[key] = value
        return arguments

    def validate(self):
        recipes.get(self.recipe)  # raises, listing the known recipes
        if self.alpha is not None:
            validate_alpha(self.alpha)
        if self.temperature is not None:
            kd_losses.validate_temperature(self.temperature, "temperature")
        if not 0.0 < float(self.labeled_fraction) <= 1.0:
            raise ValueError(f"`labeled_fraction` must lie in (0, 1]; received {self.labeled_fraction!r}.")
        if not 0.0 <= float(self.validation_split) < 1.0:
            raise ValueError(f"`validation_split` must lie in [0, 1); received {self.validation_split!r}.")
        if self.train or self.test or self.unlabeled or self.validation:
            self._validate_own_data()
        elif self.student_path:
            self._validate_student()
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
    return as_logits_model(teacher, verbose)


def as_logits_model(teacher, verbose=1):
    """`teacher`, or the same model without its final softmax (with a notice)."""
    try:
        check_outputs_are_logits(teacher, "teacher")
    except ValueError:
        _log("The saved teacher ends in softmax; using its logits instead.", verbose)
        teacher = strip_output_activation(teacher)
    return teacher


def train_on_labels(model, x, y, config, epochs, validation_data=None, validation_freq=1):
    """Train `model` on labels alone with the settings every row of the report shares."""
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=LogitsCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(
        x, y, epochs=epochs, batch_size=config.batch_size, validation_data=validation_data, verbose=config.verbose,
        callbacks=[DurationEstimate(model.name)] if config.verbose else [], validation_freq=validation_freq,
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
    """Train `student` from `teacher` with the run's recipe, alpha and temperature.

    `y` may mark unlabelled rows with `MISSING_LABEL` (a transfer set).
    """
    terms = _feature_terms(config, len(x))
    distiller = Distiller(student=student, teacher=teacher, features=terms or None)
    distiller.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        metrics=["accuracy"],
        **config.compile_arguments(),
    )
    callbacks = [DurationEstimate(f"distilling {student.name}")] if config.verbose else []
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


@dataclasses.dataclass
class DataSplit:
    """The training data as the run uses it.

    The teacher trains on every label of `train`; the students get the labels of `labeled`
    only, and the distilled student also the teacher's outputs on `pool` (labels hidden).
    `validation` (held out of the training data, never the test set) gives the `val_*` figures.
    """

    train: tuple
    labeled: tuple
    pool: np.ndarray
    validation: tuple = None

    @property
    def transfer_set(self):
        """The distilled student's data: the labelled examples plus the pool, labels marked missing."""
        if len(self.pool) == 0:
            return self.labeled
        return transfer_set(self.labeled, self.pool, seed=0)


def _stratified_choice(y, fraction, rng):
    """Indices of about `fraction` of the examples of each class (at least one per class)."""
    chosen = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        chosen.append(members[: max(1, int(round(fraction * len(members))))])
    return np.sort(np.concatenate(chosen))


def split_data(config, x_train, y_train):
    """Hold out the validation examples, then hide the labels of all but `labeled_fraction`."""
    rng = np.random.default_rng(config.seed)
    validation = None
    if config.validation_split > 0:
        held_out = _stratified_choice(y_train, config.validation_split, rng)
        keep = np.setdiff1d(np.arange(len(x_train)), held_out)
        validation = (x_train[held_out], y_train[held_out])
        x_train, y_train = x_train[keep], y_train[keep]
    if config.labeled_fraction >= 1.0:
        return DataSplit((x_train, y_train), (x_train, y_train), x_train[:0], validation)
    labeled = _stratified_choice(y_train, config.labeled_fraction, rng)
    pool = np.setdiff1d(np.arange(len(x_train)), labeled)
    return DataSplit((x_train, y_train), (x_train[labeled], y_train[labeled]), x_train[pool], validation)


def scratch_epochs(config, split):
    """Epochs that give the student from labels as many optimizer steps as the distilled student."""
    steps = config.student_epochs * math.ceil(len(split.transfer_set[0]) / config.batch_size)
    return math.ceil(steps / math.ceil(len(split.labeled[0]) / config.batch_size))


def train_or_load_teacher(config, split, total_steps=3):
    """The teacher: loaded from `config.teacher_path`, or trained on every label of `split.train`."""
    x_train, y_train = split.train
    input_shape, num_classes = x_train.shape[1:], int(np.max(y_train)) + 1
    if config.teacher_path:
        _log(f"[1/{total_steps}] loading the teacher from {config.teacher_path}", config.verbose)
        return load_teacher(config.teacher_path, input_shape, num_classes, config.verbose)
    _log(f"[1/{total_steps}] training the teacher on {len(x_train)} labelled examples for "
         f"{config.teacher_epochs} epochs", config.verbose)
    teacher = models.build_model(config.dataset, "teacher", input_shape, num_classes)
    return train_on_labels(teacher, x_train, y_train, config, config.teacher_epochs, split.validation)


def teacher_and_students(config, split, teacher, total_steps=3, build_student=None):
    """The student from labels alone and the distilled student, from the same initial weights
    and with the same number of optimizer steps, so that only their training differs.

    Args:
        build_student: `build_student(name)` -> a fresh student; default the dataset's preset.

    Returns:
        `(student_scratch, student_kd)`.
    """
    verbose = config.verbose
    x_train, y_train = split.train
    input_shape, num_classes = x_train.shape[1:], int(teacher.output_shape[-1])
    if build_student is None:
        def build_student(name):
            return models.build_model(config.dataset, "student", input_shape, num_classes, name)
    scratch = build_student("student_scratch")
    initial_weights = scratch.get_weights()
    epochs = scratch_epochs(config, split)
    _log(f"[2/{total_steps}] training the student from {len(split.labeled[0])} labels alone for {epochs} "
         "epochs (as many steps as the distilled student)", verbose)
    # Its many short epochs are validated about as often as the distilled student's.
    train_on_labels(scratch, *split.labeled, config, epochs, split.validation,
                    validation_freq=max(1, epochs // config.student_epochs))
    x_transfer, y_transfer = split.transfer_set
    _log(f"[3/{total_steps}] distilling the student ({config.recipe}) on {len(split.labeled[0])} labelled "
         f"and {len(split.pool)} unlabelled examples for {config.student_epochs} epochs", verbose)
    if recipes.get(config.recipe).assistant:
        _log("      first a teacher assistant from the teacher, then the student from the assistant", verbose)
        assistant = models.build_model(config.dataset, "assistant", input_shape, num_classes)
        teacher = distill(assistant, teacher, x_transfer, y_transfer, config, split.validation)
    kd_student = build_student("student_kd")
    kd_student.set_weights(initial_weights)
    distill(kd_student, teacher, x_transfer, y_transfer, config, split.validation)
    return scratch, kd_student


def _check_fits(model, argument, x, num_classes):
    """A clear error, before training, when `model` cannot read `x` or has the wrong class count."""
    expected = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if expected is not None and len(expected) == x.ndim - 1 and any(
            e is not None and e != d for e, d in zip(expected, x.shape[1:])):
        raise UsageError(f"The {argument} takes inputs of shape {expected}, but the data has shape "
                         f"{tuple(x.shape[1:])}.")
    outputs = model.output_shape[-1]
    if outputs != num_classes:
        raise UsageError(f"The {argument} has {outputs} outputs, but the teacher and data have {num_classes} classes.")


def _own_data(config, teacher):
    """`(split, (x_test, y_test))` from the user's files, checked against the teacher."""
    input_shape, num_classes = tuple(teacher.input_shape[1:]), teacher.output_shape[-1]

    def read(path, expect_labels=True):
        try:
            x, y, _ = user_data.load(path, input_shape, config.label_column, expect_labels)
        except ValueError as error:
            raise UsageError(str(error)) from None
        return x, y

    x_train, y_train = read(config.train)
    if y_train.min() < 0 or y_train.max() >= num_classes:
        raise UsageError(f"`train` has labels from {y_train.min()} to {y_train.max()}, but the teacher has "
                         f"{num_classes} classes (labels 0 to {num_classes - 1}).")
    _check_fits(teacher, "teacher", x_train, num_classes)
    pool = read(config.unlabeled, expect_labels=False)[0] if config.unlabeled else x_train[:0]
    if config.validation:
        validation = read(config.validation)
    elif config.validation_split > 0:
        held_out = _stratified_choice(y_train, config.validation_split, np.random.default_rng(config.seed))
        keep = np.setdiff1d(np.arange(len(x_train)), held_out)
        validation = (x_train[held_out], y_train[held_out])
        x_train, y_train = x_train[keep], y_train[keep]
    else:
        validation = None
    split = DataSplit((x_train, y_train), (x_train, y_train), pool, validation)
    return split, read(config.test)


def prepare(config, total_steps=3):
    """The run's data split, test set and teacher, from a built-in data set or the user's files.

    Returns:
        `(split, (x_test, y_test), teacher)`.
    """
    if config.train:
        _log(f"[1/{total_steps}] loading the teacher from {config.teacher_path}", config.verbose)
        teacher = as_logits_model(keras.models.load_model(config.teacher_path, compile=False), config.verbose)
        split, test = _own_data(config, teacher)
        return split, test, teacher
    (x_train, y_train), test = load_split(config)
    split = split_data(config, x_train, y_train)
    return split, test, train_or_load_teacher(config, split, total_steps)


def student_builder(config, split, num_classes):
    """`build(name)` -> a fresh student: the preset, or a copy of the user's model with its weights."""
    if not config.student_path:
        return None
    input_shape = split.train[0].shape[1:]
    if config.student_path in models.PRESETS:
        return lambda name: models.build_model(config.student_path, "student", input_shape, num_classes, name)
    template = keras.models.load_model(config.student_path, compile=False)
    check_outputs_are_logits(template, "student")
    _check_fits(template, "student", split.train[0], num_classes)

    def build(name):
        # Loaded afresh each time: both students start from the file's weights, and layers
        # with state that is not a weight (a TextVectorization vocabulary) come along.
        return keras.models.load_model(config.student_path, compile=False)

    return build


def run_distill(config, output_folder):
    """Run the main job and save the three models into `output_folder`.

    Returns:
        `(rows, metadata)`: a `ModelRow` per model, and what the run was.
    """
    config.validate()
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    split, (x_test, y_test), teacher = prepare(config)
    build = student_builder(config, split, teacher.output_shape[-1])
    scratch, kd_student = teacher_and_students(config, split, teacher, build_student=build)

    compile_arguments = config.compile_arguments()
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
        "recipe": config.recipe,
        "seed": config.seed,
        "alpha": compile_arguments["alpha"],
        "temperature": compile_arguments["temperature"],
        "labeled_examples": int(len(split.labeled[0])),
        "unlabeled_examples": int(len(split.pool)),
        "validation_examples": int(len(split.validation[0])) if split.validation else 0,
        "scratch_epochs": scratch_epochs(config, split),
        "teacher_epochs": config.teacher_epochs if not config.teacher_path else None,
        "student_epochs": config.student_epochs,
        "batch_size": config.batch_size,
        "train_examples": int(len(split.train[0])),
        "data": {name: getattr(config, name) for name in ("train", "unlabeled", "validation", "test")
                 if getattr(config, name)} or config.dataset,
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
