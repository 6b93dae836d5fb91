"""The steps every job shares: the teacher, the student from labels alone, the distilled student.

`keras-kd distill`, `compress` and `tune`, the examples and the benchmarks all train through
these functions, so their figures are produced the same way: both students start from the same
initial weights and take the same number of optimizer steps.
"""

import math

import numpy as np

from keras_kd import models, recipes
from keras_kd.augmented_cache import AugmentedTeacherCache, MixUpViews
from keras_kd.backend import keras
from keras_kd.callbacks import DistillationScheduler, DurationEstimate
from keras_kd.distiller import Distiller
from keras_kd.feature_distillation import FeatureDistillation
from keras_kd.inputs import with_indices
from keras_kd.jobs.backup import JobBackup
from keras_kd.jobs.data import check_fits, load_split, open_checked, own_split, split_data
from keras_kd.losses import LogitsCrossentropy
from keras_kd.teacher_cache import TeacherCache
from keras_kd.utils import strip_output_activation
from keras_kd.validation import check_outputs_are_logits


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
            f"The teacher at {path!r} has {teacher.output_shape[-1]} outputs; the data has {num_classes} classes."
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


def train_on_labels(model, x, y, config, epochs, validation_data=None, validation_freq=1, callbacks=()):
    """Train `model` on labels alone with the settings every row of the report shares.

    `x, y` are arrays, or `x` is a `tf.data.Dataset` of `(x, y)` batches and `y` is None.
    """
    backup = JobBackup.of(config)
    if backup and backup.finished(model):
        return model
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=LogitsCrossentropy(),
        metrics=["accuracy"],
    )
    callbacks = list(callbacks) + (backup.callbacks(model.name) if backup else [])
    model.fit(
        x,
        y,
        epochs=epochs,
        validation_data=validation_data,
        verbose=config.verbose,
        callbacks=callbacks + ([DurationEstimate(model.name)] if config.verbose else []),
        validation_freq=validation_freq,
        **_batching(x, config),
    )
    if backup:
        backup.mark_finished(model)
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


def distill(
    student,
    teacher,
    x,
    y,
    config,
    validation_data=None,
    num_examples=None,
    epochs=None,
    callbacks=(),
    teacher_cache=None,
):
    """Train `student` from `teacher` with the run's recipe, alpha, temperature, feature terms,
    schedules and teacher cache, for `epochs` (default `config.student_epochs`).

    `teacher_cache`: a `TeacherCache` made already (a teacher that reads other inputs than the
    student, for example); else one is built when `config.teacher_cache` asks for it.

    `y` may mark unlabelled rows with `MISSING_LABEL` (a transfer set). `x` may also be a
    `tf.data.Dataset` of `(x, y)` batches (`y` None, `num_examples` its size, its `x` already
    carrying indices where `needs_indices(config, num_examples)`); with `config.teacher_cache` it must yield
    the same batches on every pass (see `StreamingSplit.transfer_data`).
    """
    backup = JobBackup.of(config)
    if backup and backup.finished(student):
        return student
    streaming = _is_dataset(x)
    terms = _feature_terms(config, num_examples if streaming else len(x))
    distiller = Distiller(student=student, teacher=teacher, features=terms or None, teacher_dtype=config.teacher_dtype)
    distiller.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        metrics=["accuracy"],
        **config.compile_arguments(),
    )
    callbacks = list(callbacks) + (backup.callbacks(student.name) if backup else [])
    callbacks += [DurationEstimate(f"distilling {student.name}")] if config.verbose else []
    if config.alpha_schedule is not None or config.temperature_schedule is not None:
        callbacks.append(DistillationScheduler(alpha=config.alpha_schedule, temperature=config.temperature_schedule))
    cache = teacher_cache or (_teacher_cache(config, teacher, x, distiller) if config.teacher_cache else None)
    if any(getattr(term.loss, "needs_indices", False) for term in terms) and not streaming:
        x = with_indices(x)  # validation data stays plain: CRD reports 0 there (no memory rows)
    distiller.fit(
        x,
        y,
        epochs=epochs or config.student_epochs,
        validation_data=validation_data,
        verbose=config.verbose,
        callbacks=callbacks,
        teacher_cache=cache,
        **_batching(x, config),
    )
    if backup:
        backup.mark_finished(student)
    return distiller.student


def stage_teacher_cache(config, teacher, student, x):
    """The teacher cache `distill` would build for `student` on `x` (None unless `config.teacher_cache`),
    made once for the stages that all distil on the same data (compress: prune, cluster, QAT)."""
    if not config.teacher_cache:
        return None
    distiller = Distiller(student=student, teacher=teacher, teacher_dtype=config.teacher_dtype)
    distiller.compile(optimizer="sgd", **config.compile_arguments())  # the recipe's augmentation and T
    return _teacher_cache(config, teacher, x, distiller)


def _teacher_cache(config, teacher, x, distiller):
    """The teacher's outputs computed once: its logits, or, for a recipe that augments every batch
    (function matching), its top-5 soft labels on 4 stored mix-up views per example (FKD)."""
    if distiller.augmentation is None:
        return TeacherCache.build(teacher, x)
    return AugmentedTeacherCache.build(
        teacher,
        x,
        MixUpViews(1.0),
        views=4,
        top_k=5,
        temperature=distiller.temperature,
        teacher_dtype=config.teacher_dtype,
    )


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
    _log(
        f"[1/{total_steps}] training the teacher on {len(x_train)} labelled examples for "
        f"{config.teacher_epochs} epochs",
        config.verbose,
    )
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
    backup = JobBackup.of(config)
    initial_weights = backup.initial_weights(scratch) if backup else scratch.get_weights()
    epochs = scratch_epochs(config, split)
    _log(
        f"[2/{total_steps}] training the student from {split.num_labeled} labels alone for {epochs} "
        "epochs (as many steps as the distilled student)",
        verbose,
    )
    # Its many short epochs are validated about as often as the distilled student's.
    train_on_labels(
        scratch,
        *split.labeled_data(config),
        config,
        epochs,
        split.validation_data(config),
        validation_freq=max(1, epochs // config.student_epochs),
    )
    _log(
        f"[3/{total_steps}] distilling the student ({config.recipe}) on {split.num_labeled} labelled "
        f"and {split.num_pool} unlabelled examples for {config.student_epochs} epochs",
        verbose,
    )
    if recipes.get(config.recipe).assistant:
        _log("      first a teacher assistant from the teacher, then the student from the assistant", verbose)
        assistant = models.build_model(config.dataset, "assistant", input_shape, num_classes)
        teacher = distill_on_split(assistant, teacher, config, split)
    kd_student = build_student("student_kd")
    kd_student.set_weights(initial_weights)
    distill_on_split(kd_student, teacher, config, split)
    return scratch, kd_student


def load_teacher_for_own_data(config, total_steps=3):
    """The teacher of a run on your own data: `config.teacher_path`, any final softmax stripped."""
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
        return own_split(config, teacher), teacher
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
        split = own_split(config, teacher)
        test = open_checked(config, config.test, teacher)
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
    check_fits(template, "student", input_shape, num_classes)

    def build(name):
        # Loaded afresh each time: both students start from the file's weights, and layers
        # with state that is not a weight (a TextVectorization vocabulary) come along.
        return keras.models.load_model(config.student_path, compile=False)

    return build
