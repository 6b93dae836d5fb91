"""A top-k teacher cache on disk: written batch by batch as the teacher runs, read back memory-mapped.

For a corpus whose top-k teacher outputs do not fit in memory (k ids and k probabilities per token:
128 bytes a token at k = 32, against 4 for its token id), `TopKTeacherCache.build(...,
directory=...)` appends each batch's outputs to raw files in a folder and records its progress
after each batch, so that:

- memory holds one batch of the teacher's logits, never the corpus's outputs;
- a build that was killed (SIGKILL, a preempted machine) resumes where its last recorded batch
  ended when called again with the same arguments: bytes written after that record are cut off,
  the teacher runs on the rest only (a dataset's first batches are hashed again, not taught, and
  must match what was recorded);
- a finished folder loads memory-mapped (`TopKTeacherCache.load(directory)`), checked by the
  same fingerprint as an in-memory cache, and `fit` reads it batch by batch in file order
  (`reader_for_fit`), with the inputs, through `tf.data`.

A folder that holds anything else, or a cache of other settings, other data or another teacher
(a hash of its weights), is refused: nothing of the user's is overwritten.

Layout:
    cache.json          settings, progress (examples and batches written) and the inputs' fingerprint
    probabilities.bin   float16, C order: (examples, ..., k)
    ids.bin             uint16 (vocabularies up to 65,536) or int32, same shape
    batches.bin         a dataset's batches: int64 size, then one int64 hash per input tensor
"""

import json
import os

import numpy as np

from keras_kd import atomic
from keras_kd.backend import to_numpy
from keras_kd.data.keys import INDEX_KEY, INPUTS_KEY, TOP_K_IDS_KEY, TOP_K_PROBABILITIES_KEY, unpack
from keras_kd.teacher import batches as batching
from keras_kd.teacher.top_k_ops import TruncationError, top_k_of

FORMAT = "keras_kd.top_k_cache/1"  # written into every cache.json: a new tag orphans the caches on users' disks
MANIFEST = "cache.json"
_FILES = {"probabilities": "probabilities.bin", "ids": "ids.bin"}
_BATCHES = "batches.bin"


def _ids_dtype(num_classes):
    return "uint16" if num_classes <= 2**16 else "int32"


def teacher_fingerprint(model):
    """`batches.fingerprint` of the teacher's weights (shapes and a strided sample of each), so that a
    folder is resumed or reused for the teacher that began it only, not one retrained since."""
    weights = {f"{index:05d}": np.asarray(to_numpy(weight)).reshape(-1) for index, weight in enumerate(model.weights)}
    return batching.fingerprint(weights)


def _teacher_logits(model, inputs):
    """The teacher's logits for one batch, as NumPy (a compiled call for plain models)."""
    if getattr(model, "preprocessor", None) is None and not isinstance(inputs, dict):
        return np.asarray(to_numpy(model.predict_on_batch(inputs)))
    return np.asarray(to_numpy(model(inputs, training=False)))


class _Progress:
    """What `cache.json` records: the settings, the rows and batches whose outputs are on disk."""

    def __init__(self, directory, settings):
        self.directory = directory
        self.state = {"format": FORMAT, **settings, "examples": 0, "batches": 0, "complete": False}
        self.state.setdefault("error_sums", {"positions": 0.0, "dropped": 0.0, "kl": 0.0})

    def path(self, name):
        return os.path.join(self.directory, name)

    def record(self):
        atomic.write_json(self.path(MANIFEST), self.state)


def _read_manifest(directory):
    with open(os.path.join(directory, MANIFEST)) as handle:
        state = json.load(handle)
    if state.get("format") != FORMAT:
        raise ValueError(f"{directory} holds a cache of another format ({state.get('format')!r}, expected {FORMAT!r}).")
    return state


def _opened(directory, settings):
    """The progress of the cache in `directory`: a new one, or the one already there if it was begun
    with the same settings; a ValueError for a folder holding anything else."""
    manifest = os.path.join(directory, MANIFEST)
    if os.path.isdir(directory) and not os.path.exists(manifest):
        others = [name for name in os.listdir(directory) if atomic.PARTIAL_MARKER not in name]
        if others:
            raise ValueError(
                f"{directory} already holds files that are not a keras-kd top-k cache ({', '.join(sorted(others)[:3])}"
                f"{', ...' if len(others) > 3 else ''}); nothing was written: give an empty or new folder."
            )
    if not os.path.exists(manifest):
        os.makedirs(directory, exist_ok=True)
        progress = _Progress(directory, settings)
        for name in (*_FILES.values(), _BATCHES):
            open(progress.path(name), "wb").close()
        progress.record()
        return progress
    state = _read_manifest(directory)
    differing = [
        f"{key} {state.get(key)!r} (here {value!r})" for key, value in settings.items() if state.get(key) != value
    ]
    if differing:
        raise ValueError(
            f"{directory} holds a top-k cache built with other settings or from other data: {'; '.join(differing)}. "
            "Nothing was overwritten: give another folder, or delete this one to rebuild."
        )
    progress = _Progress(directory, settings)
    progress.state = state
    return progress


def _cut_to_recorded(progress, row_nbytes):
    """Drop bytes appended after the last recorded batch (a build killed between writing and recording)."""
    state = progress.state
    for name in _FILES:
        with open(progress.path(_FILES[name]), "rb+") as handle:
            handle.truncate(state["examples"] * row_nbytes.get(name, 0))
    with open(progress.path(_BATCHES), "rb+") as handle:
        handle.truncate(state["batches"] * state.get("batch_record", 0) * 8)


def _append(progress, outputs, batch_record=None):
    """Append one batch's outputs (and a dataset batch's size and hashes), flushed to disk."""
    for name, values in outputs.items():
        with open(progress.path(_FILES[name]), "ab") as handle:
            handle.write(np.ascontiguousarray(values).tobytes())
            handle.flush()
            os.fsync(handle.fileno())
    if batch_record is not None:
        with open(progress.path(_BATCHES), "ab") as handle:
            handle.write(np.asarray(batch_record, "<i8").tobytes())
            handle.flush()
            os.fsync(handle.fileno())


def write(teacher, x, directory, top_k, batch_size, tail, verbose="auto"):
    """Run `teacher` over `x`, appending its top-k outputs to `directory`; the keyword arguments of a
    memory-mapped `TopKTeacherCache` (see the module's docstring for resuming and refusals)."""
    teachers = teacher if isinstance(teacher, (list, tuple)) else [teacher]
    if len(teachers) != 1:
        raise ValueError("A teacher cache is built from one teacher; cache an ensemble by caching its model.")
    model = teachers[0]
    directory = os.fspath(directory)
    from_dataset = batching.is_dataset(x)
    if from_dataset:
        batching.check_finite(x, "x")
        settings = {"top_k": int(top_k), "tail": tail, "source": "dataset", "teacher": teacher_fingerprint(model)}
        total = int(x.cardinality()) if int(x.cardinality()) >= 0 else None
    else:
        if batching.num_rows(x) == 0:
            raise ValueError("`x` holds no samples: there is nothing to cache.")
        settings = {
            "top_k": int(top_k),
            "tail": tail,
            "source": "arrays",
            "teacher": teacher_fingerprint(model),
            "input_fingerprint": batching.fingerprint(x),
            "num_examples": batching.num_rows(x),
        }
        total = -(-settings["num_examples"] // batch_size)
    progress = _opened(directory, settings)
    state = progress.state
    if not state["complete"]:
        error = TruncationError()
        error.positions, error.dropped, error.kl = (state["error_sums"][key] for key in ("positions", "dropped", "kl"))
        _cut_to_recorded(progress, _row_nbytes(state))  # to 0 bytes if the first batch was never recorded
        if state["examples"]:
            print(
                f"Resuming the top-k cache in {directory}: {state['examples']:,} examples "
                f"({state['batches']:,} batches) were written before; the teacher runs on the rest."
            )
        from keras_kd.keras_compat import keras

        bar = keras.utils.Progbar(total, verbose=0 if verbose == 0 else 1, unit_name="batch")
        bar.update(state["batches"])
        batches = _dataset_batches(x, state, directory) if from_dataset else _array_batches(x, state, batch_size)
        for inputs, record in batches:
            logits = _teacher_logits(model, inputs)
            outputs = top_k_of(logits, top_k, inputs, error)
            _check_shape(state, outputs, logits.shape[-1], record)
            ids = outputs[TOP_K_IDS_KEY].astype(_ids_dtype(state["num_classes"]))
            _append(progress, {"probabilities": outputs[TOP_K_PROBABILITIES_KEY], "ids": ids}, record)
            state["examples"] += len(outputs[TOP_K_IDS_KEY])
            state["batches"] += 1
            state["error_sums"] = {"positions": error.positions, "dropped": error.dropped, "kl": error.kl}
            progress.record()
            bar.update(state["batches"])
        if state["examples"] == 0:
            raise ValueError("`x` holds no samples: there is nothing to cache.")
        if from_dataset:
            sizes, hashes = _batch_records(directory, state)
            state["input_fingerprint"] = batching.dataset_fingerprint(sizes, hashes)
        state["complete"] = True
        progress.record()
    else:
        print(
            f"The top-k cache in {directory} is complete ({state['examples']:,} examples): "
            "loaded; the teacher did not run."
        )
    return read(directory)


def _check_shape(state, outputs, num_classes, record):
    """Record the per-example shape and vocabulary on the first batch; refuse a batch of another shape."""
    ids = outputs[TOP_K_IDS_KEY]
    shape = list(ids.shape[1:-1])
    if "example_shape" not in state:
        state["example_shape"] = shape
        state["num_classes"] = int(num_classes)
        if record is not None:
            state["batch_record"] = len(record)
    elif state["num_classes"] != int(num_classes):
        raise ValueError(
            f"The teacher outputs {int(num_classes)} classes, but the cache in progress holds a teacher's top-k "
            f"over {state['num_classes']}: resume with the teacher it was begun with."
        )
    elif state["example_shape"] != shape:
        raise ValueError(
            f"The teacher's outputs differ in shape from batch to batch ({state['example_shape']} then {shape}: "
            "sequences padded to each batch's longest?): a cache needs one shape; pad every batch to one length "
            "(keras-hub preprocessors do, with `sequence_length`)."
        )


def _array_batches(x, state, batch_size):
    """`(inputs, None)` for each batch of arrays after the rows already written."""
    for start in range(state["examples"], batching.num_rows(x), batch_size):
        yield batching.row_range(x, start, start + batch_size), None


def _dataset_batches(x, state, directory):
    """`(inputs, [size, *hashes])` for each batch of a dataset after the batches already written; those
    are hashed and compared with what was recorded, so a build resumes on the same data only."""
    done = state["batches"]
    recorded = _batch_records(directory, state)[1] if done else None
    for index, element in enumerate(x):
        inputs, _, _ = unpack(batching.split_element(element)[0])
        hashes = np.asarray(batching.batch_hash(inputs))
        if index < done:
            if not np.array_equal(hashes, recorded[index]):
                raise ValueError(
                    f"Batch {index} of `x` differs from the batch {index} the top-k cache in {directory} was begun "
                    f"with: resume with the same dataset in the same order. {batching.ORDER_FIX}"
                )
            continue
        import tensorflow as tf

        # NumPy, which every engine's `predict_on_batch` takes (JAX refuses TensorFlow tensors).
        yield tf.nest.map_structure(np.asarray, inputs), [batching.batch_length(inputs), *hashes.tolist()]


def _batch_records(directory, state):
    """`(sizes, hashes)` of the batches recorded in `batches.bin`."""
    width = state.get("batch_record", 0)
    if not width:
        return np.zeros((0,), "int64"), np.zeros((0, 0), "int64")
    records = np.fromfile(os.path.join(directory, _BATCHES), dtype="<i8")[: state["batches"] * width]
    records = records.reshape(state["batches"], width)
    return records[:, 0], records[:, 1:]


def _row_nbytes(state):
    """Bytes of one example in each file (0 before the first batch is recorded)."""
    if "example_shape" not in state:
        return {"probabilities": 0, "ids": 0}
    positions = int(np.prod(state["example_shape"]))
    k = state["top_k"]
    ids_bytes = np.dtype(_ids_dtype(state["num_classes"])).itemsize
    return {"probabilities": positions * k * 2, "ids": positions * k * ids_bytes}


def read(directory):
    """The keyword arguments of a `TopKTeacherCache` over the finished cache in `directory`, memory-mapped."""
    directory = os.fspath(directory)
    if not os.path.exists(os.path.join(directory, MANIFEST)):
        raise ValueError(f"{directory} holds no keras-kd top-k cache ({MANIFEST} is missing).")
    state = _read_manifest(directory)
    if not state["complete"]:
        raise ValueError(
            f"The top-k cache in {directory} is incomplete ({state['examples']:,} examples written): call "
            "TopKTeacherCache.build(teacher, x, directory=...) again with the same arguments to resume it."
        )
    sizes = _row_nbytes(state)
    for name, row_bytes in sizes.items():
        found = os.path.getsize(os.path.join(directory, _FILES[name]))
        if found != state["examples"] * row_bytes:
            raise ValueError(
                f"{_FILES[name]} in {directory} holds {found:,} bytes where its {state['examples']:,} examples take "
                f"{state['examples'] * row_bytes:,}: the cache was changed after it was built. Rebuild it."
            )
    shape = (state["examples"], *state["example_shape"], state["top_k"])
    arrays = {
        name: np.memmap(os.path.join(directory, _FILES[name]), dtype=dtype, mode="r", shape=shape)
        for name, dtype in (("probabilities", "float16"), ("ids", _ids_dtype(state["num_classes"])))
    }
    sums = state["error_sums"]
    count = max(sums["positions"], 1.0)
    batches = _batch_records(directory, state) if state["source"] == "dataset" else (None, None)
    return {
        "probabilities": arrays["probabilities"],
        "ids": arrays["ids"],
        "num_classes": state["num_classes"],
        "input_fingerprint": state["input_fingerprint"],
        "num_examples": state["examples"],
        "batch_sizes": batches[0],
        "batch_hashes": batches[1],
        "dropped_mass": sums["dropped"] / count,
        "kl_to_full": sums["kl"] / count,
        "tail": state["tail"],
        "directory": directory,
    }


def _batch_reader(leaves):
    """A `tf.data` map function `(offset, size) -> [rows offset:offset + size of each leaf]`, read with
    NumPy (from a memory map: only that batch's pages), each leaf's shape kept but the batch's."""
    import tensorflow as tf

    def read_rows(offset, size):
        offset, size = int(offset), int(size)
        return [np.asarray(leaf[offset : offset + size]) for leaf in leaves]

    def read_batch(offset, size):
        values = tf.numpy_function(read_rows, [offset, size], [tf.as_dtype(leaf.dtype) for leaf in leaves])
        for value, leaf in zip(values, leaves):
            value.set_shape((None, *leaf.shape[1:]))
        return values

    return read_batch


def dataset_targets(cache):
    """`(offset, size) -> {target key: that batch's rows}`, read from the cache's memory-mapped files."""
    keys = list(cache.targets)
    read_batch = _batch_reader([cache.targets[key] for key in keys])
    return lambda offset, size: dict(zip(keys, read_batch(offset, size)))


def reader_for_fit(cache, x, y, kwargs):
    """`(dataset, None, fit kwargs)`: arrays `x` (with `y` and `sample_weight`) and the cache's rows read
    batch by batch in file order; `shuffle` shuffles the order of the batches each epoch (Keras's
    `shuffle="batch"`), not the examples within them, so that each read is one contiguous slice."""
    import tensorflow as tf

    kwargs = dict(kwargs)
    if kwargs.get("validation_split"):
        raise ValueError(
            "A top-k cache on disk is read batch by batch in file order, which `validation_split` would cut "
            "into: split the arrays yourself and pass `validation_data`."
        )
    inputs, _, indices = unpack(x)
    cache.check(inputs, argument="x")
    batch_size = kwargs.pop("batch_size", None) or 32
    shuffle = kwargs.pop("shuffle", True)
    sample_weight = kwargs.pop("sample_weight", None)
    if y is None and sample_weight is not None:
        raise ValueError("`sample_weight` without `y`: pass the labels (or MISSING_LABEL rows) with the weights.")
    input_keys = sorted(inputs) if isinstance(inputs, dict) else None
    parts = {
        "inputs": [inputs[key] for key in input_keys] if input_keys else [inputs],
        "targets": list(cache.targets.values()),
        "index": [] if indices is None else [indices],
        "labels": [leaf for leaf in (y, sample_weight) if leaf is not None],
    }
    read_batch = _batch_reader([leaf for leaves in parts.values() for leaf in leaves])
    starts = np.arange(0, cache.num_examples, batch_size, dtype="int64")
    sizes = np.minimum(batch_size, cache.num_examples - starts)
    batches = tf.data.Dataset.from_tensor_slices((starts, sizes))
    if shuffle:
        batches = batches.shuffle(len(starts), reshuffle_each_iteration=True)

    def element(start, size):
        values = iter(read_batch(start, size))
        taken = {name: [next(values) for _ in leaves] for name, leaves in parts.items()}
        packed = {INPUTS_KEY: dict(zip(input_keys, taken["inputs"])) if input_keys else taken["inputs"][0]}
        packed.update(zip(cache.targets, taken["targets"]))
        if taken["index"]:
            packed[INDEX_KEY] = taken["index"][0]
        return (packed, *taken["labels"]) if taken["labels"] else packed

    dataset = batches.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE), None, {**kwargs, "shuffle": False}
