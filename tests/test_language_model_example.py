"""The language-model example run as a user runs it, at tiny sizes: its settings search keeps, for
every student, the setting best on validation, and a bad flag stops it before the teacher trains."""

import json
import os
import subprocess
import sys

import pytest

from keras_kd.backend import IS_TF_KERAS

if IS_TF_KERAS:
    pytest.skip("keras-hub builds Keras 3 models only; the example needs it", allow_module_level=True)
pytest.importorskip("keras_hub")

EXAMPLE = os.path.join("examples", "text", "language_model", "distill_language_model.py")
TINY = [
    "--teacher_layers=1",
    "--teacher_width=32",
    "--teacher_epochs=1",
    "--student_layers=1",
    "--student_width=16",
    "--student_epochs=1",
    "--max_length=16",
    "--batch_size=8",
    "--top_k=4",
]
# The example's default search and tail, left out here (each test names what it checks).
ONE_SETTING = ["--validation_sentences=0", "--learning_rate_grid=", "--top_k_tail=spread"]


def corpus(folder):
    """A small rt-polarity folder: 40 sentences of each polarity."""
    words = "a fine film with a dull plot and superb actors that bore us".split()
    for name, offset in (("rt-polarity.pos", 0), ("rt-polarity.neg", 5)):
        lines = [" ".join(words[(i + offset + j) % len(words)] for j in range(4 + i % 5)) for i in range(40)]
        (folder / name).write_text("\n".join(lines) + "\n")


def run_example(tmp_path, *args):
    corpus(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    command = [sys.executable, EXAMPLE, f"--data_dir={tmp_path}", *TINY, *ONE_SETTING, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_each_student_keeps_the_setting_best_on_validation(tmp_path):
    results = tmp_path / "lm.json"
    run = run_example(
        tmp_path,
        "--student_sentences=30",
        "--validation_sentences=20",
        "--methods=labels,forward_kl",  # one distilled method: the rule is the same for each
        "--learning_rate_grid=1e-3,1e-2",
        "--alpha_grid=0.5",  # (the grid is rates x alphas: the rule is the same for either)
        "--seeds=0,1",
        "--top_k_tail=bucket",  # (after ONE_SETTING's spread: the last flag given wins)
        f"--results={results}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(results.read_text())
    assert report["top_k_cache"]["tail"] == "bucket"  # --top_k_tail reaches the cache
    assert set(report["tuning"]) == {"labels", "forward_kl"}
    assert set(report["tuning"]["labels"]) == {"rate 0.001", "rate 0.01"}
    assert set(report["tuning"]["forward_kl"]) == {"rate 0.001, alpha 0.5", "rate 0.01, alpha 0.5"}
    for method, tried in report["tuning"].items():
        best = min(tried, key=tried.get)
        rate = report["learning_rates"][method]
        alpha = report["alphas"].get(method)
        assert best == f"rate {rate:g}" + ("" if alpha is None else f", alpha {alpha:g}")
        for seed in ("0", "1"):  # the chosen setting trained every seed
            assert report["runs"][seed][method]["learning_rate"] == rate
            assert report["runs"][seed][method]["alpha"] == alpha
        # seed 0's figure is the chosen run's: its validation score is the best one tried
        assert report["runs"]["0"][method]["validation_bits_per_token"] == pytest.approx(tried[best])


def test_by_default_every_student_searches_three_rates_and_the_cache_keeps_a_tail_bucket(monkeypatch):
    # The defaults the README's generated results were run with (the search itself: the test above).
    monkeypatch.syspath_prepend(os.path.dirname(EXAMPLE))
    import distill_language_model as example

    flags = example.FLAGS
    flags.unparse_flags()
    flags(["distill_language_model.py"])
    assert [float(rate) for rate in flags.learning_rate_grid] == [1.5e-3, 3e-3, 6e-3]
    assert flags.validation_sentences == 1000 and flags.alpha_grid == [] and flags.alpha == 0.1
    assert flags.top_k_tail == "bucket" and flags.top_k == 16
    assert set(flags.methods) == {"labels", "forward_kl", "generalized_jsd"}
    flags.unparse_flags()


def test_a_bad_setting_stops_the_example_before_the_teacher_trains(tmp_path):
    run = run_example(tmp_path, "--student_sentences=30", "--method_alphas=reverse_kl:0.1")
    assert run.returncode != 0
    assert "--method_alphas names ['reverse_kl']" in run.stderr
    assert "loss:" not in run.stdout + run.stderr  # the teacher's fit prints its loss each epoch

    run = run_example(tmp_path, "--student_sentences=30", "--learning_rate_grid=1e-3,1e-2")
    assert run.returncode != 0
    assert "--learning_rate_grid needs --validation_sentences" in run.stderr
    assert "loss:" not in run.stdout + run.stderr


def test_a_student_of_another_tokenizer_learns_by_uld_from_the_live_teacher(tmp_path, monkeypatch):
    """--student_vocabulary: the student reads its own token ids (8 characters, alphabetical, the
    rest unknown) and is distilled by ULD from the live teacher of every character; a token-level
    method is refused before the teacher trains."""
    monkeypatch.syspath_prepend(os.path.dirname(EXAMPLE))
    import distill_language_model as example

    teacher_vocab = {" ": 3, "e": 4, "a": 5, "t": 6, "z": 7}  # ids by frequency
    assert example.own_vocabulary(teacher_vocab, 3) == {" ": 3, "a": 4, "e": 5}

    results = tmp_path / "lm.json"
    run = run_example(
        tmp_path, "--student_sentences=30", "--student_vocabulary=8", "--methods=labels,uld", f"--results={results}"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "loss:" in run.stdout + run.stderr  # the teacher's fit: what the refusals below must not print
    assert "| labels |" in run.stdout and "| uld |" in run.stdout
    report = json.loads(results.read_text())
    assert report["vocabulary"] == 11 and report["teacher_vocabulary"] > 11
    assert "top_k_cache" not in report and "the teacher runs on every step" in run.stdout
    seed = report["runs"]["0"]
    assert seed["uld"]["bits_per_token"] != seed["labels"]["bits_per_token"]

    run = run_example(tmp_path, "--student_sentences=30", "--student_vocabulary=8", "--methods=labels,forward_kl")
    assert run.returncode != 0 and "distil it with --methods=labels,uld" in run.stderr
    assert "loss:" not in run.stdout + run.stderr

    # (The on-policy students, gkd_step and gkd_epoch, run in the release check of the on-policy benchmark.)


def test_a_missing_backend_or_corpus_stops_at_once_saying_what_to_do(tmp_path, monkeypatch):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), KERAS_BACKEND="no_such_backend")
    run = subprocess.run([sys.executable, EXAMPLE], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode != 0 and 'pip install -e ".[no_such_backend]"' in run.stderr
    assert "Epoch" not in run.stdout
    # No copy anywhere and a download that fails (no network): where the files go.
    from keras_kd.datasets import rt_polarity

    def no_network():
        raise OSError("no network")

    monkeypatch.setattr(rt_polarity, "find_dir", lambda *args: None)
    monkeypatch.setattr(rt_polarity, "_download", no_network)
    monkeypatch.syspath_prepend(os.path.dirname(EXAMPLE))
    import distill_language_model as example

    with pytest.raises(SystemExit, match="no network.*--data_dir=FOLDER"):
        example.load_sentences(str(tmp_path / "empty"))
