"""A top-k teacher cache on disk (`TopKTeacherCache.build(..., directory=...)`, `keras_kd.teacher.top_k_disk`).

What a user relies on: the folder holds exactly what the in-memory cache holds and loads back
memory-mapped; `fit` reads each batch's rows with that batch's inputs (losses and weights equal
the in-memory cache's, shuffled or not); a build killed by SIGKILL resumes where its record ends,
the teacher running on the rest only; and nothing of the user's is overwritten.
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_kd import Distiller, TopKTeacherCache
from keras_kd.backend import keras, to_numpy
from keras_kd.teacher import top_k_disk
from tests.test_top_k_cache import language_model, sequences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def phrase_model(vocabulary, length, width, seed):
    """A language model of plain token-id arrays (no padding mask), of this test's own sizes."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((length,), dtype="int32")
    hidden = keras.layers.Embedding(vocabulary, width)(ids)
    return keras.Model(ids, keras.layers.Dense(vocabulary)(keras.layers.Dense(width, activation="relu")(hidden)))


def assert_same_cache(disk, memory):
    assert disk.tail == memory.tail and disk.num_classes == memory.num_classes
    assert disk.num_examples == memory.num_examples and disk.input_fingerprint == memory.input_fingerprint
    assert sorted(disk.targets) == sorted(memory.targets)
    for key, values in memory.targets.items():
        assert disk.targets[key].dtype == values.dtype
        np.testing.assert_array_equal(disk.targets[key], values)
    assert disk.dropped_mass == pytest.approx(memory.dropped_mass, rel=1e-9)
    assert disk.kl_to_full == pytest.approx(memory.kl_to_full, rel=1e-9)


@pytest.mark.parametrize("tail", ["spread", "bucket"])
def test_the_folder_holds_what_the_in_memory_cache_holds_and_loads_memory_mapped(tmp_path, tail, capsys):
    teacher = language_model(16, seed=3, sharpness=3.0)
    x, _, _ = sequences(count=45, seed=11)
    memory = TopKTeacherCache.build(teacher, x, top_k=3, batch_size=8, tail=tail)
    folder = tmp_path / "outputs"
    disk = TopKTeacherCache.build(teacher, x, top_k=3, batch_size=8, tail=tail, directory=folder)
    assert "6/6" in capsys.readouterr().out  # the progress bar counts the 6 batches of 8 (the last of 5)
    assert_same_cache(disk, memory)
    assert all(isinstance(values, np.memmap) for values in disk.targets.values())
    on_disk = sum(os.path.getsize(folder / name) for name in ("probabilities.bin", "ids.bin"))
    assert on_disk == disk.nbytes == memory.nbytes
    reloaded = TopKTeacherCache.load(str(folder))
    assert_same_cache(reloaded, memory)
    assert reloaded.directory == str(folder)


def fitted(teacher, x, y, weight, cache, shuffle, learning_rate=0.5):
    student = language_model(4, seed=7)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(learning_rate), alpha=0.3, temperature=2.0)
    history = distiller.fit(
        x, y, sample_weight=weight, batch_size=8, epochs=2, shuffle=shuffle, teacher_cache=cache, verbose=0
    )
    return history.history, [to_numpy(w) for w in student.weights]


def test_fit_reads_each_batch_with_its_own_rows_of_the_file(tmp_path):
    teacher = language_model(16, seed=3, sharpness=3.0)
    x, y, weight = sequences(count=48, seed=12)
    memory = TopKTeacherCache.build(teacher, x, top_k=3, batch_size=16)
    disk = TopKTeacherCache.build(teacher, x, top_k=3, batch_size=16, directory=tmp_path / "c", verbose=0)
    # In order: the same batches as the in-memory cache, so the same losses and the same student.
    history_memory, weights_memory = fitted(teacher, x, y, weight, memory, shuffle=False)
    history_disk, weights_disk = fitted(teacher, x, y, weight, disk, shuffle=False)
    for key in ("loss", "distillation_loss", "student_loss"):
        np.testing.assert_allclose(history_disk[key], history_memory[key], rtol=1e-5)
    for ours, theirs in zip(weights_disk, weights_memory):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    # Shuffled batches at learning rate 0 (6 equal batches): an epoch's mean loss does not depend on
    # the order, and would move if a batch's cached rows were not its own.
    still_memory, _ = fitted(teacher, x, y, weight, memory, shuffle=False, learning_rate=0.0)
    still_disk, _ = fitted(teacher, x, y, weight, disk, shuffle=True, learning_rate=0.0)
    for key in ("distillation_loss", "student_loss"):  # targets, labels and weights read at each batch's rows
        np.testing.assert_allclose(still_disk[key], still_memory[key], rtol=1e-5)


def test_a_dataset_built_on_disk_trains_as_in_memory_and_a_changed_order_is_refused(tmp_path):
    import tensorflow as tf

    teacher = language_model(16, seed=3, sharpness=3.0)
    x, y, weight = sequences(count=40, seed=13)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weight)).batch(8)
    memory = TopKTeacherCache.build(teacher, dataset, top_k=4)
    disk = TopKTeacherCache.build(teacher, dataset, top_k=4, directory=tmp_path / "d", verbose=0)
    assert_same_cache(disk, memory)
    np.testing.assert_array_equal(disk.batch_hashes, memory.batch_hashes)
    results = []
    for cache in (memory, disk):
        student = language_model(4, seed=7)
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.SGD(0.5), alpha=0.3, temperature=2.0)
        history = distiller.fit(dataset, epochs=2, teacher_cache=cache, verbose=0).history
        results.append((history["loss"], [to_numpy(w) for w in student.weights]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    for ours, theirs in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    reordered = tf.data.Dataset.from_tensor_slices((x, y, weight)).shuffle(40, seed=1).batch(8)
    distiller = Distiller(student=language_model(4, seed=7), teacher=teacher)
    distiller.compile(optimizer="sgd", alpha=0.3)
    with pytest.raises(ValueError, match="batch 0"):
        distiller.fit(reordered, epochs=1, teacher_cache=disk, verbose=0)


_KILLED_BUILD = """
import os, signal, sys
import numpy as np
from keras_kd import TopKTeacherCache
from keras_kd.teacher import top_k_disk
from keras_kd.backend import keras

teacher = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
records = []
write_record = top_k_disk._Progress.record


def record_then_die(progress):
    records.append(progress.state["batches"])
    if progress.state["batches"] == int(sys.argv[4]):  # that batch's outputs are on disk, its record is not
        os.kill(os.getpid(), signal.SIGKILL)
    write_record(progress)


top_k_disk._Progress.record = record_then_die
TopKTeacherCache.build(teacher, x, top_k=5, batch_size=7, directory=sys.argv[3], verbose=0)
"""


@pytest.mark.parametrize("killed_at", [1, 3])
def test_a_build_killed_between_writing_a_batch_and_recording_it_resumes_on_the_rest(
    tmp_path, monkeypatch, capsys, killed_at
):
    teacher = phrase_model(vocabulary=29, length=4, width=12, seed=5)
    x = np.random.default_rng(21).integers(0, 29, (40, 4)).astype("int32")
    teacher.save(tmp_path / "teacher.keras")
    np.save(tmp_path / "phrases.npy", x)
    folder = tmp_path / "killed"
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent(_KILLED_BUILD))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "teacher.keras"),
            str(tmp_path / "phrases.npy"),
            str(folder),
            str(killed_at),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    # `killed_at` batches of 7 on disk, one fewer recorded: the last is cut off and taught again.
    assert os.path.getsize(folder / "ids.bin") == killed_at * 7 * 4 * 5 * 2
    recorded = (killed_at - 1) * 7
    with pytest.raises(ValueError, match="incomplete.*again with the same arguments"):
        TopKTeacherCache.load(folder)
    taught = []
    teach = top_k_disk._teacher_logits

    def counted(model, inputs):
        taught.append(len(inputs))
        return teach(model, inputs)

    monkeypatch.setattr(top_k_disk, "_teacher_logits", counted)
    resumed = TopKTeacherCache.build(teacher, x, top_k=5, batch_size=7, directory=folder, verbose=0)
    if recorded:
        assert f"{recorded} examples ({killed_at - 1} batches) were written before" in capsys.readouterr().out
    assert sum(taught) == 40 - recorded
    monkeypatch.setattr(top_k_disk, "_teacher_logits", teach)
    assert_same_cache(resumed, TopKTeacherCache.build(teacher, x, top_k=5, batch_size=7))
    # A complete folder loads: the teacher does not run again.
    taught.clear()
    monkeypatch.setattr(top_k_disk, "_teacher_logits", counted)
    TopKTeacherCache.build(teacher, x, top_k=5, batch_size=7, directory=folder, verbose=0)
    assert taught == []


def test_a_dataset_build_resumes_only_on_the_dataset_it_began_with(tmp_path, monkeypatch):
    import tensorflow as tf

    teacher = phrase_model(vocabulary=23, length=3, width=8, seed=6)
    x = np.random.default_rng(22).integers(0, 23, (30, 3)).astype("int32")
    folder = tmp_path / "stream"
    write_record = top_k_disk._Progress.record

    def interrupted(progress):
        if progress.state["batches"] == 2:
            raise KeyboardInterrupt
        write_record(progress)

    monkeypatch.setattr(top_k_disk._Progress, "record", interrupted)
    with pytest.raises(KeyboardInterrupt):
        TopKTeacherCache.build(teacher, tf.data.Dataset.from_tensor_slices(x).batch(6), top_k=2, directory=folder)
    monkeypatch.setattr(top_k_disk._Progress, "record", write_record)
    other_order = tf.data.Dataset.from_tensor_slices(x[::-1].copy()).batch(6)
    with pytest.raises(ValueError, match="Batch 0 of `x` differs"):
        TopKTeacherCache.build(teacher, other_order, top_k=2, directory=folder, verbose=0)
    same = tf.data.Dataset.from_tensor_slices(x).batch(6)
    resumed = TopKTeacherCache.build(teacher, same, top_k=2, directory=folder, verbose=0)
    assert_same_cache(resumed, TopKTeacherCache.build(teacher, same, top_k=2))


def test_nothing_of_the_users_is_overwritten_and_errors_come_before_training(tmp_path):
    teacher = phrase_model(vocabulary=17, length=3, width=8, seed=8)
    x = np.random.default_rng(23).integers(0, 17, (20, 3)).astype("int32")
    notes = tmp_path / "mine"
    notes.mkdir()
    (notes / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a keras-kd top-k cache.*notes.txt"):
        TopKTeacherCache.build(teacher, x, top_k=2, directory=notes)
    assert os.listdir(notes) == ["notes.txt"] and (notes / "notes.txt").read_text() == "keep me"
    folder = tmp_path / "cache"
    cache = TopKTeacherCache.build(teacher, x, top_k=2, directory=folder, verbose=0)
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    with pytest.raises(ValueError, match="top_k 2 .here 3."):
        TopKTeacherCache.build(teacher, x, top_k=3, directory=folder)
    with pytest.raises(ValueError, match="input_fingerprint"):
        TopKTeacherCache.build(teacher, (x + 1) % 17, top_k=2, directory=folder)
    with pytest.raises(ValueError, match="teacher"):  # another teacher (other weights) would give other targets
        TopKTeacherCache.build(phrase_model(vocabulary=17, length=3, width=8, seed=99), x, top_k=2, directory=folder)
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before
    student = phrase_model(vocabulary=17, length=3, width=4, seed=9)
    start = [to_numpy(w).copy() for w in student.weights]
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", alpha=0.5)
    with pytest.raises(ValueError, match="validation_split"):
        distiller.fit(x, x, validation_split=0.2, teacher_cache=cache, verbose=0)
    with pytest.raises(ValueError, match="built from 20 examples"):
        distiller.fit(x[:10], x[:10], teacher_cache=cache, verbose=0)
    for before_weight, after in zip(start, student.weights):
        np.testing.assert_array_equal(before_weight, to_numpy(after))


def test_the_format_tag_is_the_one_earlier_versions_wrote():
    # Every cache.json on a user's disk carries this tag, and `read` refuses another: a new tag (the
    # package's move to keras_kd.teacher once made one) would orphan every cache built before.
    from keras_kd.teacher import top_k_disk

    assert top_k_disk.FORMAT == "keras_kd.top_k_cache/1"
