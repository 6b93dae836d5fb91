"""Your own data for `keras-kd distill`: read as Keras's loaders read it, streamed, and refused before
training when it cannot work. The runs end to end on every form are tests/test_acceptance.py."""

import json
import os
import wave

import numpy as np
import pytest

from keras_kd.backend import is_tensorflow_backed, keras
from keras_kd.datasets import user_data
from tests.test_cli import run_cli

RNG = np.random.default_rng(0)
CLASSES = 3


def _vector_model(features, width, name):
    return keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(CLASSES)], name=name
    )


def _image_model(width, name):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(CLASSES),
        ],
        name=name,
    )


def _audio_model(width, name):
    return keras.Sequential(
        [
            keras.Input((400, 1)),
            keras.layers.Conv1D(4, 9, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(CLASSES),
        ],
        name=name,
    )


def _save_pair(tmp_path, build, x, y):
    """A briefly trained teacher and an untrained student, saved as .keras files."""
    teacher = build(32, "teacher")
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=3, verbose=0)
    teacher.save(tmp_path / "teacher.keras")
    build(4, "student").save(tmp_path / "student.keras")
    return str(tmp_path / "teacher.keras"), str(tmp_path / "student.keras")


def _vectors(n):
    x = RNG.normal(size=(n, 6)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")


def _write_images(folder, n, labeled=True):
    for i in range(n):
        label = i % CLASSES
        image = np.zeros((8, 8, 1), "float32")
        image[label * 2 : label * 2 + 3] = 1.0  # a bar whose height says the class
        image += RNG.uniform(0, 0.2, image.shape)
        target = folder / (f"class_{label}" if labeled else "")
        target.mkdir(parents=True, exist_ok=True)
        keras.utils.save_img(str(target / f"{i}.png"), np.clip(image, 0, 1) * 255, scale=False)


def _image_folders(tmp_path, train, pool, held_out, held_out_name="test"):
    """Folders `train`, `pool` (no labels) and `held_out_name` of that many images, and a
    teacher trained on `train` and an untrained student saved beside them: `(teacher, student)`."""
    _write_images(tmp_path / "train", train)
    _write_images(tmp_path / "pool", pool, labeled=False)
    _write_images(tmp_path / held_out_name, held_out)
    x, y, _ = user_data.load(str(tmp_path / "train"), (8, 8, 1))
    return _save_pair(tmp_path, _image_model, x, y)


def _write_wavs(folder, n, labeled=True):
    for i in range(n):
        label = i % CLASSES
        t = np.arange(400) / 8000
        signal = 0.5 * np.sin(2 * np.pi * (300 + 900 * label) * t) + 0.05 * RNG.normal(size=t.size)
        target = folder / (f"digit_{label}" if labeled else "")
        target.mkdir(parents=True, exist_ok=True)
        with wave.open(str(target / f"{i}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(8000)
            handle.writeframes((signal * 32767).astype("<i2").tobytes())


def _distill(tmp_path, teacher, student, train, test, *extra):
    out = tmp_path / "run"
    result = run_cli(
        "distill",
        f"--teacher={teacher}",
        f"--student={student}",
        f"--train={train}",
        f"--test={test}",
        f"--output_dir={out}",
        "--student_epochs=2",
        "--verbose=0",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [row["name"] for row in report["models"]] == ["teacher", "student_scratch", "student_kd"]
    return report


def test_csv_with_a_named_label_column_is_read_as_written(tmp_path):
    x, y = _vectors(90)
    for name, rows in (("train.csv", slice(0, 60)), ("test.csv", slice(60, 90))):
        lines = ["f0,f1,f2,kind,f3,f4,f5"]
        for features, label in zip(x[rows], y[rows]):
            lines.append(",".join([*map(str, features[:3]), str(label), *map(str, features[3:])]))
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    loaded, labels, _ = user_data.load(str(tmp_path / "train.csv"), label_column="kind")
    np.testing.assert_allclose(loaded, x[:60], rtol=1e-6)
    np.testing.assert_array_equal(labels, y[:60])


@pytest.mark.skipif(is_tensorflow_backed(), reason="the TensorFlow backend reads strings (tests/test_acceptance.py)")
def test_a_teacher_that_reads_strings_is_refused_on_other_backends_before_training(tmp_path):
    for split in ("train", "test"):
        for i in range(6):
            folder = tmp_path / split / f"c{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.txt").write_text(f"review number {i}")
    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorize.adapt(np.array(["review number one", "two three"]))
    inputs = keras.Input((), dtype="string")
    model = keras.Model(
        inputs, keras.layers.Dense(CLASSES)(keras.layers.Flatten()(keras.layers.Embedding(20, 4)(vectorize(inputs))))
    )
    model.save(tmp_path / "teacher.keras")
    out = tmp_path / "run"
    result = run_cli(
        "distill",
        f"--teacher={tmp_path / 'teacher.keras'}",
        f"--student={tmp_path / 'teacher.keras'}",
        f"--train={tmp_path / 'train'}",
        f"--test={tmp_path / 'test'}",
        f"--output_dir={out}",
        "--verbose=0",
        timeout=300,
    )
    assert result.returncode == 2 and "reads on the TensorFlow backend only" in result.stderr, result.stderr[-2000:]
    assert not out.exists()


def test_a_preset_student_name(tmp_path):
    _write_images(tmp_path / "train", 30)
    _write_images(tmp_path / "test", 12)
    x, y, _ = user_data.load(str(tmp_path / "train"), (8, 8, 1))
    teacher, _ = _save_pair(tmp_path, _image_model, x, y)
    report = _distill(tmp_path, teacher, "digits", tmp_path / "train", tmp_path / "test")
    assert report["models"][1]["params"] == 64 * 16 + 16 + 16 * 3 + 3  # the digits preset student, 3 classes


@pytest.mark.parametrize(
    "problem, message",
    [
        ("no_test", "needs both `train`"),
        ("wrong_shape", "takes inputs of shape"),
        ("bad_labels", "labels from 0 to 7"),
        ("no_student", "give the student"),
    ],
)
def test_own_data_problems_are_refused_before_training(tmp_path, problem, message):
    x, y = _vectors(60)
    teacher, student = _save_pair(tmp_path, lambda w, n: _vector_model(6, w, n), x, y)
    np.savez(tmp_path / "train.npz", x=x, y=np.where(np.arange(60) == 5, 7, y) if problem == "bad_labels" else y)
    np.savez(tmp_path / "test.npz", x=x[:10] if problem != "wrong_shape" else x[:10, :4], y=y[:10])
    if problem == "wrong_shape":
        np.savez(tmp_path / "train.npz", x=x[:, :4], y=y)
    args = [f"--teacher={teacher}", f"--train={tmp_path / 'train.npz'}", f"--output_dir={tmp_path / 'run'}"]
    if problem != "no_test":
        args.append(f"--test={tmp_path / 'test.npz'}")
    if problem != "no_student":
        args.append(f"--student={student}")
    result = run_cli("distill", *args, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run")


def _loader_reference(kind, folder, labeled=True):
    """The examples as Keras's own loader gives them (shuffle=False), for comparison."""
    common = {"labels": "inferred" if labeled else None, "batch_size": None, "shuffle": False}
    if kind == "images":
        dataset = keras.utils.image_dataset_from_directory(
            str(folder), image_size=(8, 8), color_mode="grayscale", **common
        )
    elif kind == "audio":
        dataset = keras.utils.audio_dataset_from_directory(str(folder), output_sequence_length=400, **common)
    else:
        dataset = keras.utils.text_dataset_from_directory(str(folder), **common)
    xs, ys = [], []
    for element in dataset:
        x, y = element if labeled else (element, None)
        xs.append(np.asarray(x))
        ys.append(None if y is None else int(y))
    return np.stack(xs), ys


@pytest.mark.parametrize("kind", ["images", "audio", "text"])
def test_examples_read_by_index_equal_keras_loaders_output(tmp_path, kind):
    if kind == "images":
        _write_images(tmp_path / "data", 13)
    elif kind == "audio":
        _write_wavs(tmp_path / "data", 8)
    else:
        for i in range(7):
            (tmp_path / "data" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
            (tmp_path / "data" / f"c{i % 2}" / f"{i}.txt").write_text(f"text number {i}")
    shape = {"images": (8, 8, 1), "audio": (400, 1), "text": None}[kind]
    source = user_data.open_data(str(tmp_path / "data"), shape)
    x_ref, y_ref = _loader_reference(kind, tmp_path / "data")
    if kind == "images":
        x_ref = x_ref / 255.0
    assert source.labels.tolist() == y_ref
    some = np.array([4, 0, 6, 2])  # any order of indices
    got = np.stack([np.asarray(x) for x in source.inputs(some)])
    np.testing.assert_array_equal(got, x_ref[some].astype(got.dtype))


def _split_of_own_files(tmp_path, teacher_cache=False):
    from keras_kd.jobs.config import DistillConfig
    from keras_kd.jobs.data import own_split

    _write_images(tmp_path / "train", 30)
    _write_images(tmp_path / "pool", 12, labeled=False)
    teacher = _image_model(8, "teacher")
    config = DistillConfig(
        train=str(tmp_path / "train"),
        unlabeled=str(tmp_path / "pool"),
        batch_size=8,
        validation_split=0.2,
        teacher_cache=teacher_cache,
    )
    return own_split(config, teacher), config


def _epoch(dataset):
    xs, ys = [], []
    for x, y in dataset:
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys), [len(y) for y in ys]


def test_own_data_streams_the_split_as_prefetched_batches(tmp_path):
    import tensorflow as tf

    from keras_kd import MISSING_LABEL

    split, config = _split_of_own_files(tmp_path)
    x_all, y_all, _ = user_data.load(str(tmp_path / "train"), (8, 8, 1))
    x_pool, _, _ = user_data.load(str(tmp_path / "pool"), (8, 8, 1), expect_labels=False)
    # Validation held out of training: 20 % of each class of 10, the rest trains.
    assert split.num_validation == 6 and split.num_train == 24 and split.num_pool == 12
    held_out = set(split.held_out.tolist())
    assert held_out.isdisjoint(split.keep.tolist()) and held_out | set(split.keep.tolist()) == set(range(30))

    transfer, y = split.transfer_data(config)
    assert y is None and isinstance(transfer, tf.data.Dataset)
    assert "Prefetch" in type(transfer).__name__
    first_x, first_y, sizes = _epoch(transfer)
    second_x, _, _ = _epoch(transfer)
    assert sizes == [8, 8, 8, 8, 4]  # 36 examples in batches of 8, a smaller last one
    # Every training example once with its label, every pool example once marked missing.
    labeled_rows = {x.tobytes(): int(label) for x, label in zip(x_all[split.keep], y_all[split.keep])}
    pool_rows = {x.tobytes() for x in x_pool}
    seen = {x.tobytes(): int(label) for x, label in zip(first_x, first_y)}
    assert len(seen) == 36
    assert {k: v for k, v in seen.items() if v != MISSING_LABEL} == labeled_rows
    assert {k for k, v in seen.items() if v == MISSING_LABEL} == pool_rows
    assert not np.array_equal(first_x, second_x)  # reshuffled each epoch

    validation_x, validation_y, _ = _epoch(split.validation_data(config))
    np.testing.assert_array_equal(validation_x, x_all[split.held_out])
    np.testing.assert_array_equal(validation_y, y_all[split.held_out])


def test_with_a_teacher_cache_the_transfer_order_is_fixed_and_cached(tmp_path):
    from keras_kd import TeacherCache

    split, config = _split_of_own_files(tmp_path, teacher_cache=True)
    transfer, _ = split.transfer_data(config)
    first_x, _, _ = _epoch(transfer)
    second_x, _, _ = _epoch(transfer)
    np.testing.assert_array_equal(first_x, second_x)  # the cache needs the same batches every pass
    teacher = _image_model(8, "teacher")
    cache = TeacherCache.build(teacher, transfer)
    np.testing.assert_allclose(cache.logits, np.asarray(teacher(first_x)), rtol=1e-5, atol=1e-6)
    cache.check(transfer)


def test_teacher_cache_from_a_yaml_config_on_image_folders(tmp_path):
    teacher, student = _image_folders(tmp_path, 30, 12, 12)
    (tmp_path / "cache.yaml").write_text("teacher_cache: true\n")
    report = _distill(
        tmp_path,
        teacher,
        student,
        tmp_path / "train",
        tmp_path / "test",
        f"--unlabeled={tmp_path / 'pool'}",
        f"--config={tmp_path / 'cache.yaml'}",
    )
    assert "teacher cache" in report["metadata"]["method"] and report["metadata"]["unlabeled_examples"] == 12
