"""A user's own data for the command line: `--train`, `--unlabeled`, `--validation`, `--test`.

One argument names the data; its form says how to read it:

- `file.npz` with arrays `x` and `y` (`y` absent for unlabelled data);
- `file.csv` with a header: the column `label_column` holds the class index, the other
  columns are numeric features (no label column: unlabelled);
- a folder with one sub-folder per class (sorted names are the classes, as Keras does),
  holding images (`keras.utils.image_dataset_from_directory`), `.txt` files
  (`text_dataset_from_directory`) or `.wav` files (`audio_dataset_from_directory`); a
  folder of such files without sub-folders is unlabelled.

Images are resized to the model's input size and scaled to [0, 1]; audio is cropped or
padded to the model's input length.

`open_data(path, ...)` returns a `Source`: the labels (small) in memory, the inputs read on
demand as a `tf.data.Dataset` of the examples at any list of indices, so that the job can
split by index and stream each split (shuffled by index, decoded in parallel, batched,
prefetched) without holding the decoded files in memory. Folders are indexed by Keras's own
loader (`shuffle=False`: classes in sorted order, files sorted within each); each example is
then decoded with the same operations that loader applies (`tf.io.read_file`,
`tf.image.decode_image` + `tf.image.resize` bilinear, `tf.audio.decode_wav` with the model's
length), which tests/test_user_data.py checks element by element against the loader.
`.npz` and `.csv` files are read into memory (they are arrays already) and streamed from
there. `load(path, ...)` returns the whole of it as NumPy arrays (the test set, and tests).
"""

import os

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEXT_EXTENSIONS = (".txt",)
AUDIO_EXTENSIONS = (".wav",)


def _files(folder):
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, name) for name in names if not name.startswith(".")]
    return found


def data_kind(path):
    """ "npz", "csv", "images", "text" or "audio"; a ValueError for anything else."""
    if os.path.isfile(path):
        extension = os.path.splitext(path)[1].lower()
        if extension in (".npz", ".csv"):
            return extension[1:]
        raise ValueError(
            f"{path}: a data file must be .npz (arrays x, y) or .csv; found {extension or 'no extension'}."
        )
    if not os.path.isdir(path):
        raise ValueError(f"{path} does not exist.")
    extensions = {os.path.splitext(name)[1].lower() for name in _files(path)}
    for kind, known in (("images", IMAGE_EXTENSIONS), ("text", TEXT_EXTENSIONS), ("audio", AUDIO_EXTENSIONS)):
        if extensions & set(known):
            return kind
    raise ValueError(
        f"{path}: found no images ({', '.join(IMAGE_EXTENSIONS)}), .txt or .wav files; a data folder holds one "
        "sub-folder per class with such files."
    )


def _has_class_folders(folder):
    return any(os.path.isdir(os.path.join(folder, name)) for name in os.listdir(folder))


class Source:
    """One data argument: labels in memory, inputs read on demand by index.

    Attributes:
        path, kind: the argument and its form (`data_kind`).
        labels: int64 class indices, or None for unlabelled data.
        class_names: the class sub-folders of a folder, else None.
        num_examples: how many examples.
        example_shape: the shape of one input (`()` for a text).
        dtype: the inputs' TensorFlow dtype name.
    """

    def __init__(self, path, kind, labels, class_names, table, decode, example_shape):
        self.path, self.kind = path, kind
        self.labels, self.class_names = labels, class_names
        self._table = table  # file paths, or the arrays of an .npz/.csv file
        self._decode = decode  # (table tensor, index) -> one example
        self.example_shape = tuple(example_shape)
        self.num_examples = len(table)
        self.dtype = {"images": "float32", "audio": "float32", "text": "string"}.get(kind) or str(table.dtype)
        if self.dtype.startswith("<U") or self.dtype == "object":  # strings in an .npz file
            self.dtype = "string"

    def decode(self, index):
        """The example at `index` (a scalar tensor), inside a `tf.data` function."""
        import tensorflow as tf

        return self._decode(tf.constant(self._table), index)

    def inputs(self, indices=None):
        """An unbatched `tf.data.Dataset` of the inputs at `indices` (default: all), in that order."""
        import tensorflow as tf

        indices = np.arange(self.num_examples) if indices is None else np.asarray(indices, "int64")
        table = tf.constant(self._table)
        return tf.data.Dataset.from_tensor_slices(indices).map(
            lambda i: self._decode(table, i), num_parallel_calls=tf.data.AUTOTUNE
        )

    def arrays(self, indices=None, batch_size=256):
        """The inputs at `indices` as one NumPy array (strings as a Python object array)."""
        batches = [np.asarray(batch) for batch in self.inputs(indices).batch(batch_size)]
        if not batches:
            return np.zeros((0,) + self.example_shape, "float32")
        x = np.concatenate(batches)
        if self.kind == "text":
            x = np.array([item.decode("utf-8") for item in x], dtype=object)
        return x


def open_data(path, input_shape=None, label_column="label", expect_labels=True, class_names=None):
    """A `Source` for `path` (see the module's docstring).

    Args:
        input_shape: the model's input shape without the batch axis (image size and
            channels, or audio length); needed for image and audio folders.
        label_column: the CSV column with the class index.
        expect_labels: raise a ValueError if the data has no labels.
        class_names: a folder's class sub-folders in the order of the model's outputs (as
            Keras's loaders take `class_names=`); default their sorted names.
    """
    kind = data_kind(path)
    if class_names is not None and kind in ("npz", "csv"):
        raise ValueError(
            f"class names order the class sub-folders of a folder; {path} is a .{kind} file, whose labels "
            "are class indices already (renumber them to match the teacher's outputs)."
        )
    if kind in ("npz", "csv"):
        if kind == "npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data:
                    raise ValueError(
                        f"{path}: an .npz data file holds an array `x` (and `y` for labels); found "
                        f"{', '.join(data.files) or 'nothing'}."
                    )
                x = data["x"]
                y = data["y"].astype("int64") if "y" in data else None
        else:
            x, y = _read_csv(path, label_column)
        source = Source(path, kind, y, None, x, lambda table, i: table[i], x.shape[1:])
    else:
        source = _index_folder(path, kind, input_shape, class_names)
    y = source.labels
    if expect_labels and y is None:
        missing = {"npz": "no y array", "csv": f"no {label_column!r} column"}.get(kind, "no class sub-folders")
        raise ValueError(f"{path} has no labels ({missing}).")
    if y is not None and len(y) != source.num_examples:
        raise ValueError(f"{path}: {source.num_examples} examples but {len(y)} labels.")
    if source.num_examples == 0:
        raise ValueError(f"{path} holds no examples.")
    return source


def load(path, input_shape=None, label_column="label", expect_labels=True):
    """`(x, y, class_names)` from `path` as NumPy arrays; `y` is None for unlabelled data.

    The arguments are `open_data`'s.
    """
    source = open_data(path, input_shape, label_column, expect_labels)
    return source.arrays(), source.labels, source.class_names


def _read_csv(path, label_column):
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path} is empty.")
    header, body = rows[0], rows[1:]
    label_index = header.index(label_column) if label_column in header else None
    features = [i for i in range(len(header)) if i != label_index]
    try:
        x = np.array([[float(row[i]) for i in features] for row in body], dtype="float32")
        y = np.array([int(float(row[label_index])) for row in body], dtype="int64") if label_index is not None else None
    except (ValueError, IndexError) as error:
        raise ValueError(f"{path}: every feature must be a number and the label a class index ({error}).") from None
    return x.reshape(len(body), len(features)), y


def _listed_files(path, extensions, labeled, class_names):
    """The files in the order Keras's loaders list them with `shuffle=False`, and their class indices."""
    folders = [os.path.join(path, name) for name in class_names] if labeled else [path]
    paths, labels = [], []
    for label, folder in enumerate(folders):
        for root, _, names in sorted(os.walk(folder), key=lambda entry: entry[0]):
            for name in sorted(names):
                if name.lower().endswith(extensions):
                    paths.append(os.path.join(root, name))
                    labels.append(label)
    return paths, np.array(labels, "int64")


def _class_folders(path, class_names):
    """The class sub-folders of `path` in label order: `class_names`, checked, or sorted as Keras sorts them."""
    found = sorted(name for name in os.listdir(path) if os.path.isdir(os.path.join(path, name)))
    if class_names is None:
        return found
    if sorted(class_names) != found:
        raise ValueError(
            f"{path}: the class names given ({', '.join(class_names)}) are not its class sub-folders "
            f"({', '.join(found)})."
        )
    return list(class_names)


def _index_folder(path, kind, input_shape, class_names=None):
    """A `Source` for a folder: indexed by Keras's loader, decoded as that loader decodes."""
    import tensorflow as tf

    from keras_kd.backend import keras

    labeled = _has_class_folders(path)
    common = {"labels": "inferred" if labeled else None, "batch_size": None, "shuffle": False}
    if labeled:
        class_names = _class_folders(path, class_names)
        common["class_names"] = class_names
    if kind == "images":
        if input_shape is None or len(input_shape) != 3:
            raise ValueError(
                f"{path}: image folders need a model that takes images (height, width, channels); "
                f"the model's input shape is {input_shape}."
            )
        height, width, channels = input_shape
        color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
        if color_mode is None:
            raise ValueError(f"{path}: the model takes images with {channels} channels; images have 1, 3 or 4.")
        indexed = keras.utils.image_dataset_from_directory(
            path, image_size=(height, width), color_mode=color_mode, **common
        )
        extensions, shape = IMAGE_EXTENSIONS, (height, width, channels)

        def decode(table, i):
            image = tf.image.decode_image(tf.io.read_file(table[i]), channels=channels, expand_animations=False)
            image = tf.image.resize(image, (height, width), method="bilinear")
            image.set_shape(shape)
            return image / 255.0
    elif kind == "text":
        indexed = keras.utils.text_dataset_from_directory(path, **common)
        extensions, shape = TEXT_EXTENSIONS, ()

        def decode(table, i):
            return tf.io.read_file(table[i])
    else:
        length = input_shape[0] if input_shape else None
        if length is None:
            raise ValueError(
                f"{path}: WAV folders need a model with a fixed input length (samples, channels); "
                f"the model's input shape is {input_shape}."
            )
        indexed = keras.utils.audio_dataset_from_directory(path, output_sequence_length=length, **common)
        extensions = AUDIO_EXTENSIONS
        shape = tuple(indexed.element_spec[0].shape if labeled else indexed.element_spec.shape)

        def decode(table, i):
            audio, _ = tf.audio.decode_wav(tf.io.read_file(table[i]), desired_samples=length)
            audio.set_shape(shape)
            return audio

    class_names = class_names if labeled else None
    paths, labels = _listed_files(path, extensions, labeled, class_names)
    keras_paths = getattr(indexed, "file_paths", None)  # the image loader says which files, in which order
    # With class_names, tf_keras lists the files in sorted folder order (labels as named): compare the sets.
    listed = (sorted(keras_paths), sorted(paths)) if keras_paths is not None and class_names else (keras_paths, paths)
    if (keras_paths is not None and list(listed[0]) != listed[1]) or int(indexed.cardinality()) != len(paths):
        raise ValueError(
            f"{path}: the files listed here differ from those Keras's loader found; please report "
            "this with the folder's layout."
        )
    if labeled and list(getattr(indexed, "class_names", class_names)) != class_names:
        raise ValueError(f"{path}: the class folders differ from those Keras's loader found.")
    return Source(
        path, kind, labels if labeled else None, class_names, np.array(paths, dtype=object).astype(str), decode, shape
    )
