"""Your own teacher, student and data through `keras-kd distill`: every data form, end to end."""

import json
import os
import wave

import numpy as np
import pytest

from keras_kd.backend import IS_TF_KERAS, keras
from keras_kd.datasets import user_data
from tests.test_cli import run_cli

RNG = np.random.default_rng(0)
CLASSES = 3


def _vector_model(features, width, name):
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(CLASSES)], name=name)


def _image_model(width, name):
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(width, activation="relu"), keras.layers.Dense(CLASSES)], name=name)


def _audio_model(width, name):
    return keras.Sequential([keras.Input((400, 1)), keras.layers.Conv1D(4, 9, strides=4, activation="relu"),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(CLASSES)], name=name)


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
        image[label * 2:label * 2 + 3] = 1.0  # a bar whose height says the class
        image += RNG.uniform(0, 0.2, image.shape)
        target = folder / (f"class_{label}" if labeled else "")
        target.mkdir(parents=True, exist_ok=True)
        keras.utils.save_img(str(target / f"{i}.png"), np.clip(image, 0, 1) * 255, scale=False)


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
    result = run_cli("distill", f"--teacher={teacher}", f"--student={student}", f"--train={train}",
                     f"--test={test}", f"--output_dir={out}", "--student_epochs=2", "--verbose=0", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [row["name"] for row in report["models"]] == ["teacher", "student_scratch", "student_kd"]
    return report


@pytest.mark.parametrize("with_pool", [False, True])
def test_npz_files_with_and_without_an_unlabelled_pool(tmp_path, with_pool):
    x, y = _vectors(120)
    teacher, student = _save_pair(tmp_path, lambda w, n: _vector_model(6, w, n), x, y)
    np.savez(tmp_path / "train.npz", x=x[:60], y=y[:60])
    np.savez(tmp_path / "test.npz", x=x[60:90], y=y[60:90])
    extra = []
    if with_pool:
        np.savez(tmp_path / "pool.npz", x=x[90:])
        extra.append(f"--unlabeled={tmp_path / 'pool.npz'}")
    report = _distill(tmp_path, teacher, student, tmp_path / "train.npz", tmp_path / "test.npz", *extra)
    metadata = report["metadata"]
    assert metadata["unlabeled_examples"] == (30 if with_pool else 0)
    assert metadata["labeled_examples"] + metadata["validation_examples"] == 60  # every label is used
    assert report["models"][1]["params"] == keras.models.load_model(student).count_params()


def test_csv_with_a_named_label_column(tmp_path):
    x, y = _vectors(90)
    teacher, student = _save_pair(tmp_path, lambda w, n: _vector_model(6, w, n), x, y)
    for name, rows in (("train.csv", slice(0, 60)), ("test.csv", slice(60, 90))):
        lines = ["f0,f1,f2,kind,f3,f4,f5"]
        for features, label in zip(x[rows], y[rows]):
            lines.append(",".join([*map(str, features[:3]), str(label), *map(str, features[3:])]))
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    loaded, labels, _ = user_data.load(str(tmp_path / "train.csv"), label_column="kind")
    np.testing.assert_allclose(loaded, x[:60], rtol=1e-6)
    np.testing.assert_array_equal(labels, y[:60])
    _distill(tmp_path, teacher, student, tmp_path / "train.csv", tmp_path / "test.csv", "--label_column=kind")


def test_image_folders_with_an_unlabelled_pool(tmp_path):
    _write_images(tmp_path / "train", 48)
    _write_images(tmp_path / "test", 24)
    _write_images(tmp_path / "pool", 24, labeled=False)
    x, y, names = user_data.load(str(tmp_path / "train"), (8, 8, 1))
    assert x.shape == (48, 8, 8, 1) and 0.0 <= x.min() and x.max() <= 1.0 and names == ["class_0", "class_1",
                                                                                        "class_2"]
    teacher, student = _save_pair(tmp_path, _image_model, x, y)
    report = _distill(tmp_path, teacher, student, tmp_path / "train", tmp_path / "test",
                      f"--unlabeled={tmp_path / 'pool'}")
    assert report["metadata"]["unlabeled_examples"] == 24


def test_wav_folders(tmp_path):
    _write_wavs(tmp_path / "train", 36)
    _write_wavs(tmp_path / "test", 12)
    x, y, _ = user_data.load(str(tmp_path / "train"), (400, 1))
    assert x.shape == (36, 400, 1)
    teacher, student = _save_pair(tmp_path, _audio_model, x, y)
    _distill(tmp_path, teacher, student, tmp_path / "train", tmp_path / "test")


@pytest.mark.skipif(IS_TF_KERAS, reason="string inputs to a saved TextVectorization model: checked on Keras 3")
def test_text_folders(tmp_path):
    words = {0: "dull boring slow", 1: "fine decent okay", 2: "great superb brilliant"}
    for split, count in (("train", 45), ("test", 15)):
        for i in range(count):
            folder = tmp_path / split / f"c{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.txt").write_text(f"a {words[i % 3]} film number {i}")
    x, y, _ = user_data.load(str(tmp_path / "train"))
    assert x.dtype == object and isinstance(x[0], str) and len(x) == 45

    def build(width, name):
        vectorize = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=8)
        vectorize.adapt(x)
        inputs = keras.Input((), dtype="string")
        hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, width)(vectorize(inputs)))
        return keras.Model(inputs, keras.layers.Dense(CLASSES)(hidden), name=name)

    teacher, student = _save_pair(tmp_path, build, x, y)
    _distill(tmp_path, teacher, student, tmp_path / "train", tmp_path / "test")


def test_a_preset_student_name(tmp_path):
    _write_images(tmp_path / "train", 30)
    _write_images(tmp_path / "test", 12)
    x, y, _ = user_data.load(str(tmp_path / "train"), (8, 8, 1))
    teacher, _ = _save_pair(tmp_path, _image_model, x, y)
    report = _distill(tmp_path, teacher, "digits", tmp_path / "train", tmp_path / "test")
    assert report["models"][1]["params"] == 64 * 16 + 16 + 16 * 3 + 3  # the digits preset student, 3 classes


@pytest.mark.parametrize("problem, message", [
    ("no_test", "needs both `train`"),
    ("wrong_shape", "takes inputs of shape"),
    ("bad_labels", "labels from 0 to 7"),
    ("no_student", "give the student"),
])
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
