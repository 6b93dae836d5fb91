"""Benchmark: the top-k cache's tail bucket and a teacher of another vocabulary (issue 26, items 1 and 2).

Runs `examples/text/language_model/distill_language_model.py` at the language-model benchmark's
quick sizes, one teacher for every run, and writes the figures of two comparisons to one JSON file:

- `top_k_tail`: the distilled students (forward KL, GKD's JSD) from a top-k cache that spreads the
  rest of the teacher's mass evenly over the other tokens, and from one that keeps it as one class
  (`tail="bucket"`), at the same k and from the same initial weights, beside the student from labels;
- `other_vocabulary`: a student with a vocabulary of its own (`--student_vocabulary`: the most
  frequent characters, numbered alphabetically, the rest unknown; the teacher keeps every character
  by frequency), distilled by ULD from the live teacher, against the same student from labels.

Every student gets the same search of its own: three peak learning rates (alpha 0.1 for the
distillation of the tail comparison, 0.5 for ULD, as its paper weighs the two losses), scored on
validation sentences that no student trains on, chosen on seed 0 and kept for every seed.

    KERAS_BACKEND=jax python benchmarks/language_model_vocabularies.py --seeds=0,1,2

Writes benchmarks/results/language_model_vocabularies.json (or `--results`) and the page
docs/language_model_vocabularies_benchmark.md (`--page_only` rewrites it from the JSON).
"""

import argparse
import json
import os
import shlex
import tempfile
import time

import numpy as np
from language_model import QUICK, run_example  # the example's runner and sizes (this folder)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "language_model_vocabularies_benchmark.md")
# The language-model benchmark's quick sizes, its students on 2,400 sentences for its 12 epochs.
SETTINGS = {
    **{
        name: QUICK[name]
        for name in (
            "teacher_layers",
            "teacher_width",
            "teacher_epochs",
            "teacher_learning_rate",
            "student_layers",
            "student_width",
            "max_length",
            "batch_size",
            "top_k",
        )
    },
    "student_epochs": QUICK["small_epochs"],
    "student_sentences": 2400,
}
STUDENT_VOCABULARY = 40  # characters of the student's own vocabulary (the teacher's has every one)
GRID = {"learning_rate_grid": "1.5e-3,3e-3,6e-3", "validation_sentences": 1000}
ALPHAS = {"top_k_tail": "0.1", "other_vocabulary": "0.5"}  # each distilled student's alpha (no search)
NAMES = {
    "labels": "from labels",
    "forward_kl": "distilled, forward KL",
    "generalized_jsd": "distilled, GKD (JSD)",
    "uld": "distilled, ULD",
}


def arguments(description, results_name, page):
    """The flags the language-model benchmarks that run the example share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", default="0", help="student seeds (the search runs on the first)")
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", results_name))
    parser.add_argument("--page", default=page, help="where the docs page goes")
    parser.add_argument("--page_only", action="store_true", help="rewrite the page from --results")
    parser.add_argument("--example_flags", default="", help="more flags for the example (tests: tiny sizes)")
    return parser


def main():
    parser = arguments(__doc__.splitlines()[0], "language_model_vocabularies.json", PAGE)
    parser.add_argument("--student_vocabulary", type=int, default=STUDENT_VOCABULARY)
    args = parser.parse_args()
    if args.page_only:
        with open(args.results) as handle:
            write_page(json.load(handle), args.page)
        return
    extra = shlex.split(args.example_flags)
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        teacher_file = os.path.join(folder, "teacher.weights.h5")  # trained by the first run, loaded after

        def run(name, *flags):
            common = [f"--teacher_file={teacher_file}", f"--seeds={args.seeds}"]
            common += [f"--{setting}={value}" for setting, value in SETTINGS.items()]
            return run_example(os.path.join(folder, f"{name}.json"), [*common, *flags, *extra])

        search = [f"--{name}={value}" for name, value in GRID.items()]
        tail_search = [*search, f"--alpha_grid={ALPHAS['top_k_tail']}"]
        spread = run("spread", "--methods=labels,forward_kl,generalized_jsd", "--top_k_tail=spread", *tail_search)
        bucket = run("bucket", "--methods=forward_kl,generalized_jsd", "--top_k_tail=bucket", *tail_search)
        other = run(
            "other_vocabulary",
            "--methods=labels,uld",
            f"--student_vocabulary={args.student_vocabulary}",
            *search,
            f"--alpha_grid={ALPHAS['other_vocabulary']}",
        )
    report = {
        "settings": {
            **SETTINGS,
            "seeds": args.seeds,
            "student_vocabulary": args.student_vocabulary,
            **GRID,
            "alphas": ALPHAS,
        },
        "engine": spread["engine"],
        "teacher": spread["teacher"],
        "student": spread["student"],
        "top_k_tail": {"spread": spread, "bucket": bucket},
        "other_vocabulary": other,
        "wall_seconds": round(time.time() - started, 1),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"wrote {args.results}")
    write_page(report, args.page)


def _tried(*results, names=NAMES):
    """Each student's settings tried and their validation bits per token, the chosen one in bold."""
    parts = []
    for result in results:
        tail = result.get("top_k_cache", {}).get("tail")
        for method, values in result.get("tuning", {}).items():
            if tail == "bucket" and method == "labels":
                continue
            best = min(values, key=values.get)
            cells = ", ".join(
                (f"**{name} {value:.3f}**" if name == best else f"{name} {value:.3f}") for name, value in values.items()
            )
            name = names.get(method, method) + (f", tail {tail}" if tail and method != "labels" else "")
            parts.append(f"{name}: {cells}")
    return "; ".join(parts)


def _seeds(result, method):
    return [result["runs"][seed][method]["bits_per_token"] for seed in result["runs"]]


def _row(name, values, base=None):
    """A table row: mean ± sample std (one seed: no std), per seed, change against `base` per seed."""
    mean = float(np.mean(values))
    spread = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    per_seed = ", ".join(f"{v:.3f}" for v in values)
    change = ""
    if base is not None:
        changes = [100 * (v / b - 1) for v, b in zip(values, base)]
        change = (
            f"{100 * (mean / float(np.mean(base)) - 1):+.1f} % (per seed {', '.join(f'{c:+.1f}' for c in changes)})"
        )
    return f"| {name} | {mean:.3f}{spread} | {per_seed} | {change} |"


def write_page(report, page=PAGE):
    """The page from the report: every figure as measured."""
    from harness import write_doc

    settings, teacher, student = report["settings"], report["teacher"], report["student"]
    spread, bucket = report["top_k_tail"]["spread"], report["top_k_tail"]["bucket"]
    other = report["other_vocabulary"]
    seeds = len(spread["runs"])
    lines = [
        "# Language models: the top-k cache's tail, and a teacher of another vocabulary",
        "",
        "Generated by `KERAS_BACKEND=jax python benchmarks/language_model_vocabularies.py "
        f"--seeds={settings['seeds']}` "
        f"({report['engine']}; raw figures in `benchmarks/results/language_model_vocabularies.json`, "
        f"{report['wall_seconds'] / 60:.0f} min). The language-model example at the benchmark's quick sizes: "
        f"a character-level GPT-2-style teacher, {teacher['layers']} layers x {teacher['width']} "
        f"({teacher['parameters']:,} parameters, {teacher['epochs']} epochs on every training sentence, "
        f"{teacher['bits_per_token']:.3f} bits per token held out in its own vocabulary), and students of "
        f"{student['layers']} layer x {student['width']} trained on {spread['student_sentences']:,} of the "
        f"sentences for {student['epochs']} epochs; {seeds} seed{'s' if seeds > 1 else ''}, each seed's students "
        "starting from the same weights with the same AdamW steps. Held-out bits per token, lower is better "
        "(mean ± sample std over seeds).",
        "",
        "## The teacher's mass outside the top k: spread or one class",
        "",
        f"Both caches keep the teacher's top {spread['top_k_cache']['top_k']} tokens per position "
        f"({100 * spread['top_k_cache']['dropped_mass']:.2f} % of its mass outside them on the mean). "
        "`spread` shares the rest evenly over the other tokens; `bucket` keeps it as one class, against the "
        "student's summed probability of every token outside the teacher's k. T "
        f"{spread['temperature']:g}. Each student's peak rate chosen on seed 0 on validation (bits per token; "
        f"alpha {settings['alphas']['top_k_tail']} for the distilled ones): {_tried(spread, bucket)}.",
        "",
        "| student | bits per token | per seed | vs from labels |",
        "|---|---:|---|---|",
    ]
    labels = _seeds(spread, "labels")
    lines.append(_row(NAMES["labels"], labels))
    for method in ("forward_kl", "generalized_jsd"):
        lines.append(_row(f"{NAMES[method]}, tail spread", _seeds(spread, method), labels))
        lines.append(_row(f"{NAMES[method]}, tail bucket", _seeds(bucket, method), labels))
    labels = _seeds(other, "labels")
    tried = _tried(other)
    lines += [
        "",
        "## A teacher of another vocabulary (ULD)",
        "",
        f"The student reads its own token ids: a vocabulary of {other['vocabulary']} tokens (the "
        f"{settings['student_vocabulary']} most frequent characters numbered alphabetically, and 3 special "
        f"tokens; other characters unknown), where the teacher's has {other['teacher_vocabulary']} (every "
        "character, numbered by frequency). The distilled student learns from the live teacher by ULD "
        "(the L1 distance of each position's sorted probabilities) beside its labels; both students are "
        "scored in the student's vocabulary. Each student had the same search of its own, chosen on seed 0 by "
        f"bits per token on {settings['validation_sentences']:,} validation sentences the students never train "
        f"on (held-out test sentences chose nothing; alpha {settings['alphas']['other_vocabulary']} for ULD): "
        f"{tried}.",
        "",
        "| student | bits per token | per seed | vs from labels |",
        "|---|---:|---|---|",
        _row(NAMES["labels"], labels),
        _row(NAMES["uld"], _seeds(other, "uld"), labels),
        "",
    ]
    write_doc(page, lines, echo=False)
    print(f"wrote {os.path.relpath(page)}")


if __name__ == "__main__":
    main()
