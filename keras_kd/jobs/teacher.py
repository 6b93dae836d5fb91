"""The run's teacher and the data it meets: a saved teacher loaded and checked, or one trained on
every training label (its best epoch on validation kept), and the split both students share."""

import numpy as np

from keras_kd import models
from keras_kd.backend import keras
from keras_kd.checks import check_outputs_are_logits
from keras_kd.jobs.data import load_split, open_checked, own_split, split_data
from keras_kd.jobs.log import say
from keras_kd.jobs.training import keeper_of, record_selection, say_selection, train_on_labels
from keras_kd.utils import strip_output_activation


def load_teacher(path, input_shape=None, num_classes=None, verbose=1):
    """A saved teacher, checked against a built-in data set's shape and classes where they are given (your
    own files are checked as they are opened); a final softmax is stripped (with a notice)."""
    teacher = keras.models.load_model(path, compile=False)
    if input_shape is not None and tuple(teacher.input_shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"The teacher at {path!r} takes inputs of shape {teacher.input_shape[1:]}, but the "
            f"data has shape {tuple(input_shape)}. Pass a teacher trained on this dataset."
        )
    if num_classes is not None and teacher.output_shape[-1] != num_classes:
        raise ValueError(
            f"The teacher at {path!r} has {teacher.output_shape[-1]} outputs; the data has {num_classes} classes."
        )
    return as_logits_model(teacher, verbose)


def as_logits_model(teacher, verbose=1):
    """`teacher`, or the same model without its final softmax (with a notice)."""
    try:
        check_outputs_are_logits(teacher, "teacher")
    except ValueError:
        say("The saved teacher ends in softmax; using its logits instead.", verbose)
        teacher = strip_output_activation(teacher)
    return teacher


def train_or_load_teacher(config, split, total_steps=3, records=None):
    """The teacher: loaded from `config.teacher_path`, or trained on every label of `split.train`."""
    x_train, y_train = split.train
    input_shape, num_classes = x_train.shape[1:], int(np.max(y_train)) + 1
    if config.teacher_path:
        say(f"[1/{total_steps}] loading the teacher from {config.teacher_path}", config.verbose)
        return load_teacher(config.teacher_path, input_shape, num_classes, config.verbose)
    say(
        f"[1/{total_steps}] training the teacher on {len(x_train)} labelled examples for "
        f"{config.teacher_epochs} epochs",
        config.verbose,
    )
    teacher = models.build_model(config.dataset, "teacher", input_shape, num_classes)
    keeper = keeper_of(config, "teacher", split.validation is not None)
    keeper.patience = None  # the teacher trains its epochs; its best one is kept
    train_on_labels(
        teacher, x_train, y_train, config, config.teacher_epochs, split.validation, role="teacher", keeper=keeper
    )
    record_selection(records, "teacher", teacher, keeper, config.teacher_epochs)
    say_selection("teacher", keeper, config.verbose)
    return teacher


def prepare(config, total_steps=3, records=None, test=True):
    """The run's data split, test set and teacher, from a built-in data set or the user's files.

    `records`: a dict that receives the teacher's training record when the job trains it.
    `test=False`: the test set is left alone (`keras-kd tune` searches without it) and `None` returned
    in its place.

    Returns:
        `(split, (x_test, y_test), teacher)`: a `DataSplit` of arrays, or for your own files a
        `StreamingSplit`; the test set as arrays, read once for the report.
    """
    if config.train or getattr(config, "unlabeled", None):
        say(f"[1/{total_steps}] loading the teacher from {config.teacher_path}", config.verbose)
        teacher = load_teacher(config.teacher_path, verbose=config.verbose)
        split = own_split(config, teacher)
        if not test:
            return split, None, teacher
        checked = open_checked(config, config.test, teacher)
        return split, (checked.arrays(), checked.labels), teacher
    (x_train, y_train), test_set = load_split(config)
    split = split_data(config, x_train, y_train)
    return split, test_set if test else None, train_or_load_teacher(config, split, total_steps, records)
