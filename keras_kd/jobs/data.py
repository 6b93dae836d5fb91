"""The data of a job: a built-in data set split, or your own files streamed, checked against the teacher.

The students get the labels of a stratified `labeled_fraction` of the training examples; the
rest is the unlabelled pool the teacher scores; `validation_split` is held out for the `val_*`
figures and for choosing settings, never the test set.
"""

import dataclasses
import functools
import types

import numpy as np

from keras_kd import datasets
from keras_kd.backend import BACKEND, is_tensorflow_backed, to_numpy
from keras_kd.checks import UsageError
from keras_kd.data.keys import INDEX_KEY, INPUTS_KEY
from keras_kd.data.transfer import MISSING_LABEL, transfer_set
from keras_kd.datasets import user_data
from keras_kd.jobs.log import say
from keras_kd.jobs.report import accuracy


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

    def labeled_stream(self, config):
        """`(dataset, None)`: the labelled examples reshuffled on every pass, batched, endless (epochs of
        any number of steps: the student from labels takes a distilled epoch's steps per epoch)."""
        import tensorflow as tf

        x, y = self.labeled
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=config.seed).repeat()
        return dataset.batch(config.batch_size).prefetch(tf.data.AUTOTUNE), None

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
        return (self.source or self.pool_source).example_shape

    @property
    def train_labels(self):
        if self.source is None:  # a pool alone (alpha 0): no labelled training data
            return np.zeros(0, "int64")
        return self.source.labels[self.keep]

    # Datasets ------------------------------------------------------------------------

    def _stream(self, rows, config, shuffle, reshuffle=True, indices=False, endless=False):
        """Batches of `(x, y)` from `rows` = (source number, example index, label) arrays (`endless`:
        pass after pass, reshuffled each time)."""
        import tensorflow as tf

        sources = [self.source, self.pool_source, self.validation_source]
        which, index, label = (np.asarray(column, "int64") for column in rows)
        used = sorted(set(which.tolist()))
        branch = np.zeros(len(sources), "int64")
        branch[used] = np.arange(len(used))
        which = branch[which]  # the sources read, numbered 0, 1, ... for `switch_case`
        dtype = next(source for source in sources if source is not None).dtype

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
        if endless:
            dataset = dataset.repeat()
        dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    def labeled_data(self, config):
        """`(dataset, None)`: the labelled examples, reshuffled every epoch."""
        rows = (np.zeros(len(self.keep)), self.keep, self.train_labels)
        return self._stream(rows, config, shuffle=True), None

    def labeled_stream(self, config):
        """`labeled_data`, endless: epochs of any number of steps (see `DataSplit.labeled_stream`)."""
        rows = (np.zeros(len(self.keep)), self.keep, self.train_labels)
        return self._stream(rows, config, shuffle=True, endless=True), None

    def transfer_data(self, config, indices=False):
        """`(dataset, None)`: the labelled examples and the pool (labels `MISSING_LABEL`), shuffled.

        With `config.teacher_cache` the order is shuffled once and then kept for every epoch,
        as a `TeacherCache` on a dataset needs (arrays are reshuffled every epoch with their
        cached logits; a stream of files cannot carry logits through a reshuffle). `indices`
        adds each example's row number (for CRD's memory).
        """
        rows = [np.zeros(len(self.keep)), self.keep, self.train_labels]
        if self.num_pool:
            rows = [
                np.concatenate([rows[0], np.ones(self.num_pool)]),
                np.concatenate([rows[1], np.arange(self.num_pool)]),
                np.concatenate([rows[2], np.full(self.num_pool, MISSING_LABEL)]),
            ]
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
        if self.source is None:
            return self.pool[:0], self.train_labels
        return self.source.arrays(self.keep), self.train_labels

    @property
    def labeled(self):
        return self.train

    @functools.cached_property
    def pool(self):
        if self.pool_source is None:
            return self.train[0][:0]
        return self.pool_source.arrays().astype(self.source.dtype if self.source else self.pool_source.dtype)

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


def check_fits(model, argument, example_shape, num_classes):
    """A clear error, before training, when `model` cannot read inputs of `example_shape` or has the
    wrong class count."""
    expected = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if (
        expected is not None
        and len(expected) == len(example_shape)
        and any(e is not None and d is not None and e != d for e, d in zip(expected, example_shape))
    ):
        raise UsageError(
            f"The {argument} takes inputs of shape {expected}, but the data has shape {tuple(example_shape)}."
        )
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


def open_checked(config, path, teacher, expect_labels=True):
    """Your data file or folder at `path`, read for `teacher`'s inputs; a bad file is a `UsageError`."""
    names = config.class_name_list() if expect_labels else None
    try:
        return user_data.open_data(path, tuple(teacher.input_shape[1:]), config.label_column, expect_labels, names)
    except ValueError as error:
        raise UsageError(str(error)) from None


def teacher_on_labels(teacher, source, indices, num_classes, batch_size=256):
    """The teacher's confusion matrix on the labelled examples at `indices` (rows: labels, columns:
    the teacher's top output)."""
    confusion = np.zeros((num_classes, num_classes), "int64")
    inputs = source.inputs(indices).batch(batch_size)
    labels = source.labels[indices]
    start = 0
    for batch in inputs:
        predicted = np.argmax(to_numpy(teacher(batch, training=False)), axis=-1)
        np.add.at(confusion, (labels[start : start + len(predicted)], predicted), 1)
        start += len(predicted)
    return confusion


def check_teacher_lines_up(config, teacher, source, num_classes, limit=2000, good=0.7, kept=0.75):
    """Before any training, score the teacher on (up to `limit` of) the labelled training data; stop
    with a `UsageError` when, read in another class order, it is a good teacher (at least `good`)
    and in the labels' order it keeps at most `kept` of that accuracy: a folder whose class names
    sort otherwise than the teacher's classes, or labels numbered otherwise. (A weak teacher's
    best order gains by chance: it is not stopped.) Returns the teacher's accuracy as labelled."""
    from scipy.optimize import linear_sum_assignment

    count = min(limit, source.num_examples)
    indices = np.unique(np.linspace(0, source.num_examples - 1, count).astype("int64"))
    confusion = teacher_on_labels(teacher, source, indices, num_classes)
    total = confusion.sum()
    as_labelled = np.trace(confusion) / total
    labels, outputs = linear_sum_assignment(-confusion)  # label labels[i] best read as output outputs[i]
    lined_up = confusion[labels, outputs].sum() / total
    say(
        f"      the teacher ({teacher.name}) scores {100 * as_labelled:.2f} % on {len(indices):,} of your "
        f"labelled training examples",
        config.verbose,
    )
    if lined_up < good or as_labelled > kept * lined_up:
        return as_labelled
    names = source.class_names or [f"label {i}" for i in range(num_classes)]
    teacher_order = [None] * num_classes
    for label, output in zip(labels, outputs):
        teacher_order[output] = names[label]
    if source.class_names:
        fix = (
            f"pass --class_names={','.join(teacher_order)} (the teacher's order; Keras's loaders take "
            "the same list as class_names=)"
        )
        order = f"your classes, in the order Keras gives them (sorted folder names): {', '.join(names)}"
    else:
        pairs = ", ".join(f"{names[label]} -> {output}" for label, output in zip(labels, outputs) if label != output)
        fix = f"renumber your labels to the teacher's outputs ({pairs})"
        order = "your labels are class indices"
    raise UsageError(
        f"the teacher scores {100 * as_labelled:.2f} % on your labelled training data ({source.path}), but "
        f"{100 * lined_up:.2f} % if its outputs are read in another class order: its outputs do not line up "
        f"with your labels. {order[0].upper() + order[1:]}; the order that lines up with the teacher's "
        f"outputs: {', '.join(teacher_order)}. Fix: {fix}."
    )


def own_split(config, teacher):
    """A `StreamingSplit` of the user's training files, checked against the teacher (no test set).

    Without `train` (a pool alone, alpha 0) there is no labelled training data: the teacher is
    checked on the labelled validation data instead, and there is no student from labels.
    """
    num_classes = teacher.output_shape[-1]
    _check_backend_reads(teacher, "teacher")
    source = open_checked(config, config.train, teacher) if config.train else None
    validation = open_checked(config, config.validation, teacher) if config.validation else None
    for data in (source, validation):
        if data is not None:
            _check_labels(data, num_classes)
            check_fits(teacher, "teacher", data.example_shape, num_classes)
    if source is not None or validation is not None:
        check_teacher_lines_up(config, teacher, source or validation, num_classes)
    pool = open_checked(config, config.unlabeled, teacher, expect_labels=False) if config.unlabeled else None
    if pool is not None and source is not None and (pool.kind == "text") != (source.kind == "text"):
        raise UsageError("`unlabeled` and `train` must hold the same kind of input (text, or numbers).")
    if pool is not None:
        check_fits(teacher, "teacher", pool.example_shape, num_classes)
    keep, held_out = np.arange(source.num_examples if source else 0), None
    if validation is None and source is not None and config.validation_split > 0:
        held_out = _stratified_choice(source.labels, config.validation_split, np.random.default_rng(config.seed))
        keep, validation = np.setdiff1d(keep, held_out), source
    return StreamingSplit(source, keep, pool, validation, held_out, seed=config.seed)


def _check_labels(source, num_classes):
    labels = source.labels
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UsageError(
            f"`{source.path}` has labels from {labels.min()} to {labels.max()}, but the teacher has "
            f"{num_classes} classes (labels 0 to {num_classes - 1})."
        )
