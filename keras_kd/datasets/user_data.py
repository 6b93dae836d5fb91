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
padded to the model's input length. The data come back as NumPy arrays, so that the job's
splits, teacher cache and fingerprints work on them as on the built-in data sets.
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
    """"npz", "csv", "images", "text" or "audio"; a ValueError for anything else."""
    if os.path.isfile(path):
        extension = os.path.splitext(path)[1].lower()
        if extension in (".npz", ".csv"):
            return extension[1:]
        raise ValueError(f"{path}: a data file must be .npz (arrays x, y) or .csv; found "
                         f"{extension or 'no extension'}.")
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


def _to_arrays(dataset, labeled):
    xs, ys = [], []
    for batch in dataset:
        if labeled:
            x, y = batch
            ys.append(np.asarray(y))
        else:
            x = batch
        xs.append(np.asarray(x))
    if not xs:
        raise ValueError("The data set holds no examples.")
    return np.concatenate(xs), (np.concatenate(ys).astype("int64") if labeled else None)


def load(path, input_shape=None, label_column="label", expect_labels=True):
    """`(x, y, class_names)` from `path`; `y` is None for unlabelled data.

    Args:
        input_shape: the model's input shape without the batch axis (image size and
            channels, or audio length); needed for image and audio folders.
        label_column: the CSV column with the class index.
        expect_labels: raise a ValueError if the data has no labels.
    """
    kind = data_kind(path)
    class_names = None
    if kind == "npz":
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data:
                raise ValueError(f"{path}: an .npz data file holds an array `x` (and `y` for labels); found "
                                 f"{', '.join(data.files) or 'nothing'}.")
            x = data["x"]
            y = data["y"].astype("int64") if "y" in data else None
    elif kind == "csv":
        x, y = _read_csv(path, label_column)
    else:
        x, y, class_names = _read_folder(path, kind, input_shape)
    if expect_labels and y is None:
        missing = {"npz": "no y array", "csv": f"no {label_column!r} column"}.get(kind, "no class sub-folders")
        raise ValueError(f"{path} has no labels ({missing}).")
    if y is not None and len(y) != len(x):
        raise ValueError(f"{path}: {len(x)} examples but {len(y)} labels.")
    if len(x) == 0:
        raise ValueError(f"{path} holds no examples.")
    return x, y, class_names


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
    return x, y


def _read_folder(path, kind, input_shape):
    from keras_kd.backend import keras

    labeled = _has_class_folders(path)
    labels = "inferred" if labeled else None
    common = {"labels": labels, "batch_size": 256, "shuffle": False}
    if kind == "images":
        if input_shape is None or len(input_shape) != 3:
            raise ValueError(f"{path}: image folders need a model that takes images (height, width, channels); "
                             f"the model's input shape is {input_shape}.")
        height, width, channels = input_shape
        color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
        if color_mode is None:
            raise ValueError(f"{path}: the model takes images with {channels} channels; images have 1, 3 or 4.")
        dataset = keras.utils.image_dataset_from_directory(path, image_size=(height, width), color_mode=color_mode,
                                                           **common)
        dataset = dataset.map(lambda x, *label: (x / 255.0, *label) if label else x / 255.0)
    elif kind == "text":
        dataset = keras.utils.text_dataset_from_directory(path, **common)
    else:
        length = input_shape[0] if input_shape else None
        dataset = keras.utils.audio_dataset_from_directory(path, output_sequence_length=length, **common)
    class_names = getattr(dataset, "class_names", None)
    if labeled:
        class_names = sorted(name for name in os.listdir(path) if os.path.isdir(os.path.join(path, name)))
    x, y = _to_arrays(dataset, labeled)
    if kind == "text":
        # Python strings in an object array: what Keras and TensorFlow take as string inputs.
        x = np.array([item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in x], dtype=object)
    return x, y, class_names
