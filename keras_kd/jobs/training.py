"""The steps every job shares: the student from labels alone and the distilled student (the teacher:
`keras_kd.jobs.teacher`).

`keras-kd distill`, `compress` and `tune`, the examples and the benchmarks all train through
these functions, so their figures are produced the same way: both students start from the same
initial weights, train in epochs of the same number of optimizer steps, are validated after every
epoch, keep their best epoch on validation and stop after the same number of epochs without
improvement, within the same budget. Each model is named by its role in the run (`teacher`,
`student_scratch`, `student_kd`, `assistant`), never by its Keras name, in the backup, the logs,
the history and the report.
"""

import math
import zlib

from keras_kd import models
from keras_kd.backend import keras
from keras_kd.checks import check_outputs_are_logits
from keras_kd.data.checks import StopOnNonFiniteEpochLoss
from keras_kd.data.keys import with_indices
from keras_kd.distiller import Distiller
from keras_kd.features import FeatureDistillation
from keras_kd.jobs import sweep
from keras_kd.jobs.backup import JobBackup
from keras_kd.jobs.data import check_fits
from keras_kd.jobs.log import say
from keras_kd.losses import LogitsCrossentropy
from keras_kd.teacher.augmented import AugmentedTeacherCache, MixUpViews
from keras_kd.teacher.cache import TeacherCache
from keras_kd.training import recipes
from keras_kd.training.callbacks import DistillationScheduler, DurationEstimate, KeepBestEpoch


def _is_dataset(x):
    import tensorflow as tf

    return isinstance(x, tf.data.Dataset)


def _batching(x, config):
    """`fit`'s batching: the config's batch size for arrays; a dataset is batched and shuffled already."""
    return {"shuffle": False} if _is_dataset(x) else {"batch_size": config.batch_size}


def seed_role(config, role):
    """Seed the draws of `role`'s training from the run's seed and the role alone: a model that a rerun
    loads from the backup instead of training it leaves every other model's shuffles, dropout and
    initializers as an uninterrupted run had them."""
    keras.utils.set_random_seed((int(config.seed) * 1_000_003 + zlib.crc32(role.encode())) % 2**31)


def _job_callbacks(config, role, label, validation_freq=1, keeper=None):
    """The callbacks every training of a job gets: the backup (a rerun resumes), `keeper` (the best
    epoch on validation), TensorBoard logs under `config.tensorboard_dir/role`, the duration estimate."""
    import os

    backup = JobBackup.of(config)
    callbacks = [keeper] if keeper is not None else []
    callbacks += backup.callbacks(role) if backup else []
    if getattr(config, "tensorboard_dir", None):
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(config.tensorboard_dir, role)))
    if config.verbose:
        stops_early = keeper is not None and keeper.patience is not None
        callbacks.append(DurationEstimate(label, validation_freq=validation_freq, stops_early=stops_early))
    return callbacks


def optimizer(config):
    """The optimizer of every model a job trains: Adam, or AdamW with `config.weight_decay`."""
    if float(config.weight_decay) > 0:
        return keras.optimizers.AdamW(float(config.learning_rate), weight_decay=float(config.weight_decay))
    return keras.optimizers.Adam(float(config.learning_rate))


def train_on_labels(
    model,
    x,
    y,
    config,
    epochs,
    validation_data=None,
    validation_freq=1,
    callbacks=(),
    role=None,
    keeper=None,
    steps_per_epoch=None,
):
    """Train `model` on labels alone with the settings every row of the report shares.

    `x, y` are arrays, or `x` is a `tf.data.Dataset` of `(x, y)` batches and `y` is None. `role`
    names the model in the backup and the logs (default its Keras name); `keeper`, a
    `KeepBestEpoch`, keeps its best epoch on validation.
    """
    role = role or model.name
    backup = JobBackup.of(config)
    if backup and backup.finished(role, model):
        return model
    seed_role(config, role)
    model.compile(
        optimizer=optimizer(config),
        loss=LogitsCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(
        x,
        y,
        epochs=epochs,
        validation_data=validation_data,
        verbose=config.verbose,
        callbacks=[
            *callbacks,
            *_job_callbacks(config, role, _label(role, model), validation_freq, keeper),
            StopOnNonFiniteEpochLoss(),
        ],
        validation_freq=validation_freq,
        steps_per_epoch=steps_per_epoch,
        **_batching(x, config),
    )
    if backup:
        backup.mark_finished(role, model)
    return model


def _label(role, model):
    """`role (keras name)` for the logs: which model of the run, and which of the user's."""
    return role if model.name == role else f"{role} ({model.name})"


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
    role=None,
    keeper=None,
):
    """Train `student` from `teacher` with the run's recipe, alpha, temperature, feature terms,
    schedules and teacher cache, for `epochs` (default `config.student_epochs`).

    `teacher_cache`: a `TeacherCache` made already (a teacher that reads other inputs than the
    student, for example); else one is built when `config.teacher_cache` asks for it.

    `y` may mark unlabelled rows with `MISSING_LABEL` (a transfer set). `x` may also be a
    `tf.data.Dataset` of `(x, y)` batches (`y` None, `num_examples` its size, its `x` already
    carrying indices where `needs_indices(config, num_examples)`); with `config.teacher_cache` it must yield
    the same batches on every pass (see `StreamingSplit.transfer_data`). `role` and `keeper` are
    `train_on_labels`'s.
    """
    role = role or student.name
    backup = JobBackup.of(config)
    if backup and backup.finished(role, student):
        return student
    seed_role(config, role)
    streaming = _is_dataset(x)
    terms = _feature_terms(config, num_examples if streaming else len(x))
    distiller = Distiller(student=student, teacher=teacher, features=terms or None, teacher_dtype=config.teacher_dtype)
    distiller.compile(
        optimizer=optimizer(config),
        metrics=["accuracy"],
        **config.compile_arguments(),
    )
    callbacks = list(callbacks) + _job_callbacks(config, role, f"distilling {_label(role, student)}", 1, keeper)
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
        backup.mark_finished(role, student)
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


def keeper_of(config, role, has_validation):
    """The best-epoch rule of every model the job compares (kept in the backup when there is one)."""
    backup = JobBackup.of(config)
    state = backup.best_epoch_state(role) if backup else None
    return KeepBestEpoch(patience=config.patience if has_validation else None, state_path=state)


def record_selection(records, role, model, keeper, max_epochs):
    """Note in `records[role]` what `keeper` chose and every epoch's logs (for the report and curves)."""
    if records is None:
        return
    records[role] = {
        "model_name": model.name,
        **keeper.selection(),
        "max_epochs": int(max_epochs),
        "patience": keeper.patience,
        "steps_per_epoch": keeper.steps_per_epoch,
        "epochs": keeper.epochs,
    }


def say_selection(role, keeper, verbose):
    """One line on the epoch `keeper` kept for `role` (or its last epoch, without validation data)."""
    record = keeper.selection()
    if record["best_epoch"] is None:
        say(f"      {role}: no validation data; kept its last epoch ({record['epochs_trained']})", verbose)
        return
    say(
        f"      {role}: best epoch {record['best_epoch']} of {record['epochs_trained']} trained "
        f"(validation accuracy {100 * record['validation_accuracy']:.2f} %), its weights kept",
        verbose,
    )


def distill_on_split(student, teacher, config, split, role=None, keeper=None):
    """`distill` on the split's transfer data (arrays, or a stream of files)."""
    size = split.num_labeled + split.num_pool
    x, y = split.transfer_data(config, indices=needs_indices(config, size))
    return distill(
        student, teacher, x, y, config, split.validation_data(config), num_examples=size, role=role, keeper=keeper
    )


def teacher_and_students(config, split, teacher, total_steps=3, build_student=None, records=None):
    """The student from labels alone and the distilled student, from the same initial weights, under
    the same rule: at most `config.student_epochs` epochs of the same number of optimizer steps,
    validated after every epoch, the best epoch kept, stopped after `config.patience` epochs without
    improvement. Without validation data both train their whole budget.

    Args:
        split: a `DataSplit` (arrays) or a `StreamingSplit` (your own files, as `tf.data`).
        build_student: `build_student(role)` -> a fresh student; default the dataset's preset.
        records: a dict that receives, per role, the epoch kept and every epoch's logs.

    Returns:
        `(student_scratch, student_kd)`.
    """
    verbose = config.verbose
    input_shape, num_classes = split.input_shape, int(teacher.output_shape[-1])
    if build_student is None:

        def build_student(name):
            return models.build_model(config.dataset, "student", input_shape, num_classes, name)

    has_validation = split.num_validation > 0
    scratch = build_student("student_scratch")
    backup = JobBackup.of(config)
    initial_weights = backup.initial_weights(scratch) if backup else scratch.get_weights()

    def fresh(role):
        student = build_student(role)
        student.set_weights(initial_weights)
        return student

    if split.num_labeled == 0:
        say(f"[2/{total_steps}] no labelled training data: no student from labels to compare with", verbose)
        scratch = None
    else:

        def train_scratch(trial_config, role):
            model = scratch if role == "student_scratch" else fresh("student_scratch")
            keeper = keeper_of(trial_config, role, has_validation)
            train_control(trial_config, split, model, role, keeper)
            return model, keeper

        _say_scratch_plan(config, split, scratch.name, total_steps, has_validation)
        scratch = _searched("student_scratch", config, train_scratch, records)
    say(
        f"[3/{total_steps}] distilling the student ({config.recipe}) on {split.num_labeled} labelled "
        f"and {split.num_pool} unlabelled examples: up to {config.student_epochs} epochs, "
        + ("the same rule" if has_validation else "all of them (no validation data)"),
        verbose,
    )
    if recipes.get(config.recipe).assistant:
        say("      first a teacher assistant from the teacher, then the student from the assistant", verbose)
        assistant = models.build_model(config.dataset, "assistant", input_shape, num_classes)
        assistant_keeper = keeper_of(config, "assistant", has_validation)
        teacher = distill_on_split(assistant, teacher, config, split, role="assistant", keeper=assistant_keeper)
        record_selection(records, "assistant", assistant, assistant_keeper, config.student_epochs)

    def train_distilled(trial_config, role):
        model, keeper = fresh("student_kd"), keeper_of(trial_config, role, has_validation)
        distill_on_split(model, teacher, trial_config, split, role=role, keeper=keeper)
        return model, keeper

    kd_student = _searched("student_kd", config, train_distilled, records)
    return scratch, kd_student


def _searched(arm, config, train_trial, records):
    """`arm`'s model, the best on validation of its grid (`keras_kd.jobs.sweep`), recorded in `records`."""
    model, keeper, selection = sweep.search(arm, config, train_trial, log=lambda text: say(text, config.verbose))
    record_selection(records, arm, model, keeper, config.student_epochs)
    if records is not None:
        records[arm].update(trials=selection["trials"], chosen=selection["chosen"])
    say_selection(arm, keeper, config.verbose)
    return model


def distilled_epoch_steps(config, split):
    """Optimizer steps in one epoch of the distilled student: a pass over the labelled examples and the pool."""
    return math.ceil((split.num_labeled + split.num_pool) / config.batch_size)


def _say_scratch_plan(config, split, name, total_steps, has_validation):
    """The control: the student on the labelled examples alone, under the rule of `teacher_and_students`.

    Its epochs hold as many optimizer steps as the distilled student's (several passes over its
    few labels), so both are validated after the same steps, stop after the same patience and
    have the same budget; and a run of thousands of tiny epochs, each paying Keras's per-epoch
    cost, becomes `student_epochs` of them.
    """
    steps = distilled_epoch_steps(config, split)
    passes = steps / math.ceil(split.num_labeled / config.batch_size)
    rule = (
        f"stopping after {config.patience} epochs without improvement on validation; its best epoch is kept"
        if has_validation
        else "no validation data, so no epoch is chosen: it trains them all"
    )
    say(
        f"[2/{total_steps}] training the student from labels alone ({name}) on {split.num_labeled} labels: "
        f"up to {config.student_epochs} epochs of {steps} optimizer steps (as many as a distilled epoch: "
        f"{passes:.1f} passes over its labels), {rule}",
        config.verbose,
    )


def train_control(config, split, scratch, role, keeper):
    """Train the control `scratch` on the split's labelled examples alone, as `_say_scratch_plan` says
    (epochs of a distilled epoch's optimizer steps), as `role`, its best epoch kept by `keeper`."""
    steps = distilled_epoch_steps(config, split)
    seed_role(config, role)  # the stream's shuffle takes the global seed when it is made
    stream, _ = split.labeled_stream(config)
    backup = JobBackup.of(config)
    if backup:  # an endless stream: a rerun skips the batches of the epochs the killed run completed
        stream = stream.skip(backup.completed_epochs(role) * steps)
    train_on_labels(
        scratch,
        stream,
        None,
        config,
        config.student_epochs,
        split.validation_data(config),
        role=role,
        keeper=keeper,
        steps_per_epoch=steps,
    )


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
