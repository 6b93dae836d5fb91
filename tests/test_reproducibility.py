"""One seed, one run: the same weights twice on one engine and backend; the report says what ran."""

import json

import numpy as np

import keras_kd
from keras_kd.backend import ENGINE_DESCRIPTION, keras
from keras_kd.jobs.report import ModelRow, write_report
from keras_kd.jobs.report.environment import package_versions
from tests.conftest import make_mlp


def _distil(seed, x, y):
    keras.utils.set_random_seed(seed)
    teacher = make_mlp(32, dropout=0.5)
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=2, batch_size=16, verbose=0)
    student = make_mlp(8, dropout=0.2)  # dropout draws from the seeded generator too
    distiller = keras_kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", alpha=0.3, temperature=3.0, metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=True)
    return [np.asarray(w) for w in student.get_weights()], history.history["loss"]


def test_one_seed_gives_the_same_weights_twice(data):
    x, y = data
    first, first_losses = _distil(42, x, y)
    second, second_losses = _distil(42, x, y)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert first_losses == second_losses
    other, _ = _distil(43, x, y)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))  # the seed matters


def test_report_records_the_seed_and_every_package_version(tmp_path):
    import numpy  # noqa: F401  (imported: must be listed)

    rows = [ModelRow("student_kd", 100, 4000, 0.9, 0.1), ModelRow("teacher", 1000, 40000, 0.95, 1.0)]
    write_report(str(tmp_path), "digits", rows, {"seed": 7})
    with open(tmp_path / "report.json") as handle:
        metadata = json.load(handle)["metadata"]
    assert metadata["seed"] == 7
    environment = metadata["environment"]
    assert environment["engine"] == ENGINE_DESCRIPTION
    packages = environment["packages"]
    for name in ("keras-kd", "numpy", "tensorflow", "matplotlib"):
        assert name in packages, name
    assert packages["numpy"] == np.__version__
    assert packages == {**package_versions(), **packages}  # nothing imported since is missing
    markdown = (tmp_path / "report.md").read_text()
    assert "- seed: 7" in markdown and f"numpy {np.__version__}" in markdown
