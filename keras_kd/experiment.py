"""The main job: teacher, student from labels alone, student by distillation, measured side by side.

`keras-kd distill`, the examples and the benchmarks all run this one function, so their
figures are produced the same way.
"""

import dataclasses
import functools
import math
import os
import time
import types

import numpy as np

from keras_kd import datasets, models, recipes
from keras_kd import losses as kd_losses
from keras_kd.backend import BACKEND, ENGINE_DESCRIPTION, is_tensorflow_backed, keras, to_numpy
from keras_kd.callbacks import DistillationScheduler, DurationEstimate
from keras_kd.datasets import user_data
from keras_kd.distiller import Distiller
from keras_kd.feature_distillation import FeatureDistillation
from keras_kd.inputs import INDEX_KEY, INPUTS_KEY, with_indices
from keras_kd.losses import LogitsCrossentropy
from keras_kd.report import ModelRow, accuracy, latency_ms, model_file_size
from keras_kd.teacher_cache import TeacherCache
from keras_kd.transfer_data import MISSING_LABEL, transfer_set
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

    def _validate_own_data(self, require_test=True):
        if not (self.train and (self.test or not require_test)):
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

    def validate(self, require_test=True):
        """Raise a ValueError for any setting that cannot run (`require_test`: own data needs `test`)."""
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
            self._validate_own_data(require_test)
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


def _is_dataset(x):
    import tensorflow as tf

    return isinstance(x, tf.data.Dataset)


def _batching(x, config):
    """`fit`'s batching: the config's batch size for arrays; a dataset is batched and shuffled already."""
    return {"shuffle": False} if _is_dataset(x) else {"batch_size": config.batch_size}


def train_on_labels(model, x, y, config, epochs, validation_data=None, validation_freq=1):
    """Train `model` on labels alone with the settings every row of the report shares.

    `x, y` are arrays, or `x` is a `tf.data.Dataset` of `(x, y)` batches and `y` is None.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=LogitsCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(
        x, y, epochs=epochs, validation_data=validation_data, verbose=config.verbose,
        callbacks=[DurationEstimate(model.name)] if config.verbose else [], validation_freq=validation_freq,
        **_batching(x, config),
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


def needs_indices(config, num_examples):
    """True if a feature term of `config` keeps a per-example memory (CRD): the data carry indices."""
    return any(getattr(term.loss, "needs_indices", False) for term in _feature_terms(config, num_examples))


def distill(student, teacher, x, y, config, validation_data=None, num_examples=None):
    """Train `student` from `teacher` with the run's recipe, alpha and temperature.

    `y` may mark unlabelled rows with `MISSING_LABEL` (a transfer set). `x` may also be a
    `tf.data.Dataset` of `(x, y)` batches (`y` None, `num_examples` its size, its `x` already
    carrying indices where `needs_indices(config, num_examples)`); with `config.teacher_cache` it must yield
    the same batches on every pass (see `StreamingSplit.transfer_data`).
    """
    streaming = _is_dataset(x)
    terms = _feature_terms(config, num_examples if streaming else len(x))
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
    if any(getattr(term.loss, "needs_indices", False) for term in terms) and not streaming:
        x = with_indices(x)  # validation data stays plain: CRD reports 0 there (no memory rows)
    distiller.fit(
        x, y, epochs=config.student_epochs, validation_data=validation_data, verbose=config.verbose,
        callbacks=callbacks, teacher_cache=cache, **_batching(x, config),
    )
    return distiller.student


def load_split(config):
    """The run's data set: `(x_train, y_train), (x_test, y_test)`."""
    loader_args = {"data_dir": config.data_dir} if config.dataset != "digits" else {}
    return datasets.load(config.dataset, **loader_args)


@dataclasses.dataclass
class DataSplit:
    """The training data as the run uses it, as NumPy arrays (the built-in data sets).

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

    @property
    def num_labeled(self):
        return len(self.labeled[0])

    @property
    def num_pool(self):
        return len(self.pool)

    @property
    def num_validation(self):
        return len(self.validation[0]) if self.validation is not None else 0

    @property
    def num_train(self):
        return len(self.train[0])

    @property
    def input_shape(self):
        return tuple(self.train[0].shape[1:])

    def labeled_data(self, config):
        """`(x, y)` for `fit`: the labelled examples (Keras shuffles and batches them)."""
        return self.labeled

    def transfer_data(self, config, indices=False):
        """`(x, y)` for `fit`: the transfer set (`indices`: `distill` adds them to arrays itself)."""
        return self.transfer_set

    def validation_data(self, config):
        return self.validation

    def validation_accuracy(self, model):
        return accuracy(model, *self.validation)


class StreamingSplit:
    """Your own data as the run uses it: indices into the files, streamed as `tf.data` per epoch.

    The split is made on indices (the files are listed in a fixed order): `keep` are the
    training examples (the students get all their labels), `held_out` the validation
    examples taken from `--train` (or all of `--validation`), and the pool is every example
    of `--unlabeled`. Each training dataset shuffles a table of (file, index, label) rows,
    a cheap full permutation of indices, and only then reads and decodes the files in
    parallel, batches and prefetches them, so no split is ever held in memory decoded.

    The array views (`train`, `labeled`, `pool`, `validation`, `transfer_set`) read the
    files into memory on first use; the job's training does not use them (a later stage
    that takes arrays, such as `keras-kd compress`'s pruning and int8 export, does).
    """

    def __init__(self, source, keep, pool_source=None, validation_source=None, held_out=None, seed=0):
        self.source, self.keep = source, np.asarray(keep, "int64")
        self.pool_source = pool_source
        self.validation_source, self.held_out = validation_source, held_out
        self.seed = seed

    # Sizes, without reading any file -------------------------------------------------

    @property
    def num_train(self):
        return len(self.keep)

    num_labeled = num_train  # own data: the students get every training label

    @property
    def num_pool(self):
        return self.pool_source.num_examples if self.pool_source is not None else 0

    @property
    def num_validation(self):
        if self.validation_source is None:
            return 0
        return len(self.held_out) if self.held_out is not None else self.validation_source.num_examples

    @property
    def input_shape(self):
        return self.source.example_shape

    @property
    def train_labels(self):
        return self.source.labels[self.keep]

    # Datasets ------------------------------------------------------------------------

    def _stream(self, rows, config, shuffle, reshuffle=True, indices=False):
        """Batches of `(x, y)` from `rows` = (source number, example index, label) arrays."""
        import tensorflow as tf

        sources = [self.source, self.pool_source, self.validation_source]
        which, index, label = (np.asarray(column, "int64") for column in rows)
        used = sorted(set(which.tolist()))
        branch = np.zeros(len(sources), "int64")
        branch[used] = np.arange(len(used))
        which = branch[which]  # the sources read, numbered 0, 1, ... for `switch_case`
        dtype = self.source.dtype

        def read(source_number, i):
            branches = [lambda n=n: tf.cast(sources[n].decode(i), dtype) for n in used]
            if len(branches) == 1:
                return branches[0]()
            return tf.switch_case(tf.cast(source_number, "int32"), branches)

        def example(position, source_number, i, y):
            x = read(source_number, i)
            return ({INPUTS_KEY: x, INDEX_KEY: position} if indices else x), y

        dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(which), dtype="int64"), which, index, label))
        if shuffle:
            dataset = dataset.shuffle(len(which), seed=self.seed, reshuffle_each_iteration=reshuffle)
        dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    def labeled_data(self, config):
        """`(dataset, None)`: the labelled examples, reshuffled every epoch."""
        rows = (np.zeros(len(self.keep)), self.keep, self.train_labels)
        return self._stream(rows, config, shuffle=True), None

    def transfer_data(self, config, indices=False):
        """`(dataset, None)`: the labelled examples and the pool (labels `MISSING_LABEL`), shuffled.

        With `config.teacher_cache` the order is shuffled once and then kept for every epoch,
        as a `TeacherCache` on a dataset needs (arrays are reshuffled every epoch with their
        cached logits; a stream of files cannot carry logits through a reshuffle). `indices`
        adds each example's row number (for CRD's memory).
        """
        rows = [np.zeros(len(self.keep)), self.keep, self.train_labels]
        if self.num_pool:
            rows = [np.concatenate([rows[0], np.ones(self.num_pool)]),
                    np.concatenate([rows[1], np.arange(self.num_pool)]),
                    np.concatenate([rows[2], np.full(self.num_pool, MISSING_LABEL)])]
        return self._stream(rows, config, shuffle=True, reshuffle=not config.teacher_cache, indices=indices), None

    def validation_data(self, config):
        """A dataset of the validation batches, in file order; None without validation data."""
        if self.validation_source is None:
            return None
        held_out = self.held_out if self.held_out is not None else np.arange(self.validation_source.num_examples)
        rows = (np.full(len(held_out), 2), held_out, self.validation_source.labels[held_out])
        return self._stream(rows, config, shuffle=False)

    def validation_accuracy(self, model, batch_size=256):
        """Top-1 accuracy of `model` on the validation examples, read batch by batch."""
        data = self.validation_data(types.SimpleNamespace(batch_size=batch_size))
        correct = total = 0
        for x, y in data:
            predicted = np.argmax(to_numpy(model(x, training=False)), axis=-1)
            correct += int(np.sum(predicted == np.asarray(y)))
            total += len(predicted)
        return correct / total

    # Arrays, read on first use (for stages that need them) ----------------------------

    @functools.cached_property
    def train(self):
        return self.source.arrays(self.keep), self.train_labels

    @property
    def labeled(self):
        return self.train

    @functools.cached_property
    def pool(self):
        if self.pool_source is None:
            return self.train[0][:0]
        return self.pool_source.arrays().astype(self.train[0].dtype)

    @functools.cached_property
    def validation(self):
        if self.validation_source is None:
            return None
        held_out = self.held_out if self.held_out is not None else np.arange(self.validation_source.num_examples)
        return self.validation_source.arrays(held_out), self.validation_source.labels[held_out]

    @property
    def transfer_set(self):
        if self.num_pool == 0:
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
    steps = config.student_epochs * math.ceil((split.num_labeled + split.num_pool) / config.batch_size)
    return math.ceil(steps / math.ceil(split.num_labeled / config.batch_size))


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


def distill_on_split(student, teacher, config, split):
    """`distill` on the split's transfer data (arrays, or a stream of files)."""
    size = split.num_labeled + split.num_pool
    x, y = split.transfer_data(config, indices=needs_indices(config, size))
    return distill(student, teacher, x, y, config, split.validation_data(config), num_examples=size)


def teacher_and_students(config, split, teacher, total_steps=3, build_student=None):
    """The student from labels alone and the distilled student, from the same initial weights
    and with the same number of optimizer steps, so that only their training differs.

    Args:
        split: a `DataSplit` (arrays) or a `StreamingSplit` (your own files, as `tf.data`).
        build_student: `build_student(name)` -> a fresh student; default the dataset's preset.

    Returns:
        `(student_scratch, student_kd)`.
    """
    verbose = config.verbose
    input_shape, num_classes = split.input_shape, int(teacher.output_shape[-1])
    if build_student is None:
        def build_student(name):
            return models.build_model(config.dataset, "student", input_shape, num_classes, name)
    scratch = build_student("student_scratch")
    initial_weights = scratch.get_weights()
    epochs = scratch_epochs(config, split)
    _log(f"[2/{total_steps}] training the student from {split.num_labeled} labels alone for {epochs} "
         "epochs (as many steps as the distilled student)", verbose)
    # Its many short epochs are validated about as often as the distilled student's.
    train_on_labels(scratch, *split.labeled_data(config), config, epochs, split.validation_data(config),
                    validation_freq=max(1, epochs // config.student_epochs))
    _log(f"[3/{total_steps}] distilling the student ({config.recipe}) on {split.num_labeled} labelled "
         f"and {split.num_pool} unlabelled examples for {config.student_epochs} epochs", verbose)
    if recipes.get(config.recipe).assistant:
        _log("      first a teacher assistant from the teacher, then the student from the assistant", verbose)
        assistant = models.build_model(config.dataset, "assistant", input_shape, num_classes)
        teacher = distill_on_split(assistant, teacher, config, split)
    kd_student = build_student("student_kd")
    kd_student.set_weights(initial_weights)
    distill_on_split(kd_student, teacher, config, split)
    return scratch, kd_student


def _check_fits(model, argument, example_shape, num_classes):
    """A clear error, before training, when `model` cannot read inputs of `example_shape` or has the
    wrong class count."""
    expected = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if expected is not None and len(expected) == len(example_shape) and any(
            e is not None and d is not None and e != d for e, d in zip(expected, example_shape)):
        raise UsageError(f"The {argument} takes inputs of shape {expected}, but the data has shape "
                         f"{tuple(example_shape)}.")
    outputs = model.output_shape[-1]
    if outputs != num_classes:
        raise UsageError(f"The {argument} has {outputs} outputs, but the teacher and data have {num_classes} classes.")


def _check_backend_reads(model, argument):
    """Keras 3 feeds string inputs (a TextVectorization inside the model) on the TensorFlow backend only."""
    if any(str(getattr(t, "dtype", "")) == "string" for t in (model.inputs or [])) and not is_tensorflow_backed():
        raise UsageError(
            f"The {argument} takes strings (a TextVectorization layer inside the model), which Keras 3 reads on "
            f"the TensorFlow backend only; the active backend is {BACKEND}. Run with KERAS_BACKEND=tensorflow, "
            "or move the TextVectorization into the data pipeline and give the model token ids."
        )


def _open(config, path, teacher, expect_labels=True):
    try:
        return user_data.open_data(path, tuple(teacher.input_shape[1:]), config.label_column, expect_labels)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _own_split(config, teacher):
    """A `StreamingSplit` of the user's training files, checked against the teacher (no test set)."""
    num_classes = teacher.output_shape[-1]
    _check_backend_reads(teacher, "teacher")
    source = _open(config, config.train, teacher)
    labels = source.labels
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UsageError(f"`train` has labels from {labels.min()} to {labels.max()}, but the teacher has "
                         f"{num_classes} classes (labels 0 to {num_classes - 1}).")
    _check_fits(teacher, "teacher", source.example_shape, num_classes)
    pool = _open(config, config.unlabeled, teacher, expect_labels=False) if config.unlabeled else None
    if pool is not None and (pool.kind == "text") != (source.kind == "text"):
        raise UsageError("`unlabeled` and `train` must hold the same kind of input (text, or numbers).")
    if pool is not None:
        _check_fits(teacher, "teacher", pool.example_shape, num_classes)
    keep, validation, held_out = np.arange(source.num_examples), None, None
    if config.validation:
        validation = _open(config, config.validation, teacher)
    elif config.validation_split > 0:
        held_out = _stratified_choice(labels, config.validation_split, np.random.default_rng(config.seed))
        keep, validation = np.setdiff1d(keep, held_out), source
    return StreamingSplit(source, keep, pool, validation, held_out, seed=config.seed)


def load_teacher_for_own_data(config, total_steps=3):
    _log(f"[1/{total_steps}] loading the teacher from {config.teacher_path}", config.verbose)
    return as_logits_model(keras.models.load_model(config.teacher_path, compile=False), config.verbose)


def prepare_training(config, total_steps=3):
    """The run's training data split and teacher, from a built-in data set or the user's files.

    The test set is not read (`keras-kd tune` searches without it).

    Returns:
        `(split, teacher)`: a `DataSplit` of arrays, or for your own files a `StreamingSplit`.
    """
    if config.train:
        teacher = load_teacher_for_own_data(config, total_steps)
        return _own_split(config, teacher), teacher
    (x_train, y_train), _ = load_split(config)
    split = split_data(config, x_train, y_train)
    return split, train_or_load_teacher(config, split, total_steps)


def prepare(config, total_steps=3):
    """The run's data split, test set and teacher, from a built-in data set or the user's files.

    Returns:
        `(split, (x_test, y_test), teacher)`; the test set as arrays, read once for the report.
    """
    if config.train:
        teacher = load_teacher_for_own_data(config, total_steps)
        split = _own_split(config, teacher)
        test = _open(config, config.test, teacher)
        return split, (test.arrays(), test.labels), teacher
    (x_train, y_train), test = load_split(config)
    split = split_data(config, x_train, y_train)
    return split, test, train_or_load_teacher(config, split, total_steps)


def student_builder(config, split, num_classes):
    """`build(name)` -> a fresh student: the preset, or a copy of the user's model with its weights."""
    if not config.student_path:
        return None
    input_shape = split.input_shape
    if config.student_path in models.PRESETS:
        return lambda name: models.build_model(config.student_path, "student", input_shape, num_classes, name)
    template = keras.models.load_model(config.student_path, compile=False)
    check_outputs_are_logits(template, "student")
    _check_fits(template, "student", input_shape, num_classes)

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
        "labeled_examples": int(split.num_labeled),
        "unlabeled_examples": int(split.num_pool),
        "validation_examples": int(split.num_validation),
        "scratch_epochs": scratch_epochs(config, split),
        "teacher_epochs": config.teacher_epochs if not config.teacher_path else None,
        "student_epochs": config.student_epochs,
        "batch_size": config.batch_size,
        "train_examples": int(split.num_train),
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
