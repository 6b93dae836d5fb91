"""Acceptance: `keras-kd distill` on a user's own models and data, as the README tells a user to run it.

The data are made here (procedural 1-D signals, a CSV table, folders of images, texts and WAV
files) and used by no example; the teachers and students are built here, under the names a
Keras user gives them or the names Keras gives by default. Each test asserts what a user relies
on: the distilled student was distilled (its weights differ from the initial weights and from
the student from labels'), the report's rows are the run's roles with the user's model names
beside them, and its accuracies are those of the saved files when a second process loads them.
"""

import json
import os

import numpy as np
import pytest

from keras_kd.backend import is_tensorflow_backed, keras
from tests import signals
from tests.test_cli import run_cli

ROLES = ["teacher", "student_scratch", "student_kd"]
EPOCHS = 15


def _weights(path):
    return [np.asarray(w) for w in keras.models.load_model(path, compile=False).get_weights()]


def _differ(a, b):
    """True if any float weight differs (tf_keras lists a TextVectorization's vocabulary among them)."""
    floats = [(x, y) for x, y in zip(a, b) if x.dtype.kind == "f"]
    assert floats
    return any(x.shape != y.shape or not np.allclose(x, y) for x, y in floats)


def _accuracy(path, x, y):
    model = keras.models.load_model(path, compile=False)
    return float(np.mean(np.argmax(np.asarray(model.predict(x, batch_size=256, verbose=0)), -1) == y))


def _check_run(out, student_file, names, roles=ROLES):
    """The checks every run shares; returns the report."""
    report = json.loads((out / "report.json").read_text())
    rows = report["models"]
    assert [row["name"] for row in rows] == roles
    initial = _weights(student_file)
    distilled = _weights(out / "student_kd.keras")
    assert _differ(distilled, initial), "the distilled student never trained"
    if "student_scratch" in [row["name"] for row in rows]:
        from_labels = _weights(out / "student_scratch.keras")
        assert _differ(distilled, from_labels), "the distilled student is the student from labels"
        assert _differ(from_labels, initial), "the student from labels never trained"
    assert [row["model_name"] for row in rows] == names
    for row in rows:
        assert row["size_bytes"] == os.path.getsize(out / f"{row['name']}.keras")
    history = json.loads((out / "history.json").read_text())
    for role in [row["name"] for row in rows if row["name"] != "teacher"]:
        assert history[role]["epochs"], role
    return report


@pytest.fixture(scope="module")
def signal_files(tmp_path_factory):
    """A teacher trained on 4,000 labelled signals of its own; for the run, 60 labelled signals, a pool of
    3,000 unlabelled ones, 200 for validation and 1,000 for the test, as .npz files."""
    folder = tmp_path_factory.mktemp("signals")
    keras.utils.set_random_seed(0)
    teacher = signals.conv_teacher(keras)
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(*signals.signals(4000, seed=1), epochs=10, batch_size=64, verbose=0)
    teacher.save(folder / "teacher.keras")
    signals.dense_student(keras).save(folder / "student.keras")
    parts = {"train": (60, 2), "pool": (3000, 3), "validation": (200, 4), "test": (1000, 5)}
    for name, (n, seed) in parts.items():
        x, y = signals.signals(n, seed=seed)
        np.savez(folder / f"{name}.npz", **({"x": x} if name == "pool" else {"x": x, "y": y}))
    return folder


# The tests that share the module's teacher run in one worker process (`--dist loadgroup`): it trains once.
@pytest.mark.xdist_group("signal_files")
def test_the_distilled_student_is_distilled_and_as_good_as_a_plain_keras_loop(signal_files, tmp_path):
    files, out = signal_files, tmp_path / "run"
    result = run_cli(
        "distill",
        f"--teacher={files / 'teacher.keras'}",
        f"--student={files / 'student.keras'}",
        f"--train={files / 'train.npz'}",
        f"--unlabeled={files / 'pool.npz'}",
        f"--validation={files / 'validation.npz'}",
        f"--test={files / 'test.npz'}",
        f"--output_dir={out}",
        f"--student_epochs={EPOCHS}",
        "--patience=4",
        "--verbose=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = _check_run(out, files / "student.keras", ["signal_teacher", "signal_student", "signal_student"])
    accuracy = {row["name"]: row["accuracy"] for row in report["models"]}

    # A second process (this one) loads the saved files and scores them as the report did.
    with np.load(files / "test.npz") as test:
        x_test, y_test = test["x"], test["y"]
    for role in ROLES:
        assert _accuracy(out / f"{role}.keras", x_test, y_test) == pytest.approx(accuracy[role], abs=1e-6)

    # The same distillation written as a plain Keras loop, on the same data, from the same weights.
    with np.load(files / "train.npz") as train, np.load(files / "pool.npz") as pool:
        x_transfer = np.concatenate([train["x"], pool["x"]])
    teacher = keras.models.load_model(files / "teacher.keras", compile=False)
    student = keras.models.load_model(files / "student.keras", compile=False)
    signals.plain_keras_distillation(keras, student, teacher, x_transfer, epochs=EPOCHS)
    plain = float(np.mean(np.argmax(np.asarray(student.predict(x_test, verbose=0)), -1) == y_test))
    assert accuracy["student_kd"] >= plain - 0.05, (accuracy, plain)
    assert accuracy["student_kd"] >= accuracy["student_scratch"] + 0.15, accuracy

    # Each student kept its best epoch on validation, and the log and the report say which.
    selection = report["metadata"]["selection"]
    history = json.loads((out / "history.json").read_text())
    for role in ("student_scratch", "student_kd"):
        chosen = selection[role]
        scores = [epoch["val_accuracy"] for epoch in history[role]["epochs"] if "val_accuracy" in epoch]
        assert chosen["validation_accuracy"] == pytest.approx(max(scores))
        assert f"best epoch {chosen['best_epoch']}" in result.stdout
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def _keras_names(*paths):
    return [keras.models.load_model(path, compile=False).name for path in paths]


def _save(model, path):
    model.save(path)
    return path


def _trained_teacher(model, x, y, path, epochs=20):
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(x, y, epochs=epochs, verbose=0)
    return _save(model, path)


def _write_bars(folder, n, names=None, seed=0):
    """Images whose class is the height of a bright bar, in `folder/<class name>/` (no sub-folder: unlabelled)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = i % 3
        image = rng.uniform(0, 0.2, (8, 8, 1))
        image[label * 3 : label * 3 + 2] = 1.0
        target = folder / names[label] if names else folder
        target.mkdir(parents=True, exist_ok=True)
        keras.utils.save_img(str(target / f"{i}.png"), np.clip(image, 0, 1) * 255, scale=False)


def _image_model(width, name=None):
    layers = [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(width, activation="relu")]
    return keras.Sequential(layers + [keras.layers.Dense(3)], name=name)


def _form_csv(folder):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(150, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)
    header = "a,b,label,c,d,e"
    for name, rows in (("train", slice(0, 60)), ("pool", slice(60, 120)), ("test", slice(120, 150))):
        lines = [header if name != "pool" else "a,b,c,d,e"]
        for features, label in zip(x[rows], y[rows]):
            cells = [*map(str, features[:2]), *([str(label)] if name != "pool" else []), *map(str, features[2:])]
            lines.append(",".join(cells))
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")

    def model(width):  # Keras's default names: sequential, sequential_1, ...
        return keras.Sequential(
            [keras.Input((5,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(3)]
        )

    teacher = _trained_teacher(model(32), x[:120], y[:120], folder / "teacher.keras")
    return teacher, _save(model(4), folder / "student.keras"), [folder / f"{n}.csv" for n in ("train", "pool", "test")]


def _form_images(folder):
    names = ["c0", "c1", "c2"]
    _write_bars(folder / "train", 45, names)
    _write_bars(folder / "pool", 30, seed=1)
    _write_bars(folder / "test", 21, names, seed=2)
    from keras_kd.datasets import user_data

    x, y, _ = user_data.load(str(folder / "train"), (8, 8, 1))
    teacher = _trained_teacher(_image_model(32, "model"), x, y, folder / "teacher.keras")  # one name for both
    return (
        teacher,
        _save(_image_model(4, "model"), folder / "student.keras"),
        [folder / n for n in ("train", "pool", "test")],
    )


def _form_wav(folder):
    from tests.test_user_data import _write_wavs

    _write_wavs(folder / "train", 36)
    _write_wavs(folder / "test", 12)
    from keras_kd.datasets import user_data

    x, y, _ = user_data.load(str(folder / "train"), (400, 1))

    def model(width):
        layers = [keras.Input((400, 1)), keras.layers.Conv1D(4, 9, strides=4, activation="relu")]
        layers += [keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(width, activation="relu")]
        return keras.Sequential(layers + [keras.layers.Dense(3)])

    teacher = _trained_teacher(model(16), x, y, folder / "teacher.keras")
    return teacher, _save(model(4), folder / "student.keras"), [folder / "train", None, folder / "test"]


def _form_text(folder):
    words = {0: "dull boring slow", 1: "fine decent okay", 2: "great superb brilliant"}
    for split, count in (("train", 45), ("test", 15)):
        for i in range(count):
            (folder / split / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
            (folder / split / f"c{i % 3}" / f"{i}.txt").write_text(f"a {words[i % 3]} film number {i}")
    from keras_kd.datasets import user_data

    x, y, _ = user_data.load(str(folder / "train"))

    def model(width):
        vectorize = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=8)
        vectorize.adapt(x)
        inputs = keras.Input((), dtype="string")
        hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, width)(vectorize(inputs)))
        return keras.Model(inputs, keras.layers.Dense(3)(hidden), name="reviews")

    teacher = _trained_teacher(model(16), x, y, folder / "teacher.keras")
    return teacher, _save(model(4), folder / "student.keras"), [folder / "train", None, folder / "test"]


FORMS = {"csv": _form_csv, "images": _form_images, "wav": _form_wav, "text": _form_text}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_of_own_data_distils_the_distilled_student(tmp_path, form):
    if form == "text" and not is_tensorflow_backed():
        pytest.skip("string inputs to a saved TextVectorization model: Keras 3 reads them on TensorFlow only")
    teacher, student, (train, pool, test) = FORMS[form](tmp_path)
    out = tmp_path / "run"
    args = [f"--teacher={teacher}", f"--student={student}", f"--train={train}", f"--test={test}"]
    args += [f"--unlabeled={pool}"] if pool else []
    args += ["--label_column=label"] if form == "csv" else []
    args += [f"--tensorboard_dir={tmp_path / 'logs'}"] if form == "images" else []
    result = run_cli("distill", *args, f"--output_dir={out}", "--student_epochs=3", "--verbose=2")
    assert result.returncode == 0, result.stderr[-3000:]
    teacher_name, student_name = _keras_names(teacher, student)
    _check_run(out, student, [teacher_name, student_name, student_name])
    if form == "images":  # Keras's TensorBoard logs, a run per role
        for role in ("student_scratch", "student_kd"):
            assert any("tfevents" in name for _, _, names in os.walk(tmp_path / "logs" / role) for name in names)


@pytest.mark.xdist_group("signal_files")
def test_a_pool_alone_at_alpha_0_distils_with_no_student_from_labels(signal_files, tmp_path):
    files, out = signal_files, tmp_path / "run"
    args = [f"--teacher={files / 'teacher.keras'}", f"--student={files / 'student.keras'}"]
    args += [f"--unlabeled={files / 'pool.npz'}", f"--validation={files / 'validation.npz'}"]
    args += [f"--test={files / 'test.npz'}", f"--output_dir={out}", "--student_epochs=2", "--verbose=2"]
    refused = run_cli("distill", *args)  # the hinton recipe's alpha 0.5 weighs labels there are none of
    assert refused.returncode == 2 and "--alpha=0" in refused.stderr and not out.exists()
    result = run_cli("distill", *args, "--alpha=0")
    assert result.returncode == 0, result.stderr[-3000:]
    report = _check_run(out, files / "student.keras", ["signal_teacher", "signal_student"], ["teacher", "student_kd"])
    assert report["metadata"]["labeled_examples"] == 0 and report["metadata"]["unlabeled_examples"] == 3000
    assert report["models"][1]["accuracy"] > 0.5  # chance is 1/6


def test_a_teacher_whose_classes_sort_otherwise_stops_before_training_and_says_the_fix(tmp_path):
    """Folders named in the teacher's class order tshirt, trouser, pullover; Keras sorts them
    pullover, trouser, tshirt, so labels and teacher outputs no longer line up."""
    names = ["tshirt", "trouser", "pullover"]
    _write_bars(tmp_path / "train", 45, names)
    _write_bars(tmp_path / "test", 21, names, seed=2)
    rng = np.random.default_rng(3)
    y = np.arange(300) % 3
    x = rng.uniform(0, 0.2, (300, 8, 8, 1)).astype("float32")
    for i, label in enumerate(y):
        x[i, label * 3 : label * 3 + 2] = 1.0  # output i is names[i]: the teacher's order
    teacher = _trained_teacher(_image_model(32, "fashion_teacher"), x, y, tmp_path / "teacher.keras")
    student = _save(_image_model(4, "fashion_student"), tmp_path / "student.keras")
    out = tmp_path / "run"
    args = [f"--teacher={teacher}", f"--student={student}", f"--train={tmp_path / 'train'}"]
    args += [f"--test={tmp_path / 'test'}", f"--output_dir={out}", "--student_epochs=2", "--verbose=2"]
    refused = run_cli("distill", *args)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "--class_names=tshirt,trouser,pullover" in refused.stderr, refused.stderr
    assert "pullover, trouser, tshirt" in refused.stderr and "Traceback" not in refused.stderr
    assert "Epoch 1/" not in refused.stdout and not out.exists()  # before any training

    result = run_cli("distill", *args, "--class_names=tshirt,trouser,pullover")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["models"][0]["accuracy"] > 0.9
