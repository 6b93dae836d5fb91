"""The run report: a table on the terminal, and `report.json`, `report.md`, `report.png`."""

import dataclasses
import math
import os

from keras_kd import atomic
from keras_kd.jobs.report.environment import run_environment

MEGABYTE = 1e6


@dataclasses.dataclass
class ModelRow:
    """One model's measurements; `name` is its role in the run ("teacher", "student_scratch",
    "student_kd"), `model_name` the Keras name of the user's model it is."""

    name: str
    params: int
    size_bytes: int
    accuracy: float
    latency_ms: float
    model_name: str = None

    def as_dict(self):
        return dataclasses.asdict(self)


# (header, function of a row) for each column of the main job's table.
MODEL_COLUMNS = (
    ("model", lambda row: row.name if row.model_name in (None, row.name) else f"{row.name} ({row.model_name})"),
    ("parameters", lambda row: f"{row.params:,}"),
    ("size (MB)", lambda row: f"{row.size_bytes / MEGABYTE:.3f}"),
    ("test accuracy (%)", lambda row: f"{100 * row.accuracy:.2f}"),
    ("CPU latency (ms/example)", lambda row: f"{row.latency_ms:.3f}"),
)


def format_table(rows, columns=MODEL_COLUMNS):
    """A Markdown table of the rows, as printed by the CLI and written to `report.md`."""
    lines = ["| " + " | ".join(header for header, _ in columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row) for _, cell in columns) + " |")
    return "\n".join(lines)


def _plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    sizes = [row.size_bytes / MEGABYTE for row in rows]
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    largest = max(sizes)
    low, high = min(100 * r.accuracy for r in rows), max(100 * r.accuracy for r in rows)
    margin = max(1.0, 0.15 * (high - low))
    placed = []
    for row, size in zip(rows, sizes):
        accuracy = 100 * row.accuracy
        axes.scatter(size, accuracy, s=60)
        # Labels of the right-most points go to their left, so none runs off the plot; labels of
        # points close together (a model and its pruned or int8 copy) are stacked, not drawn over.
        right_most = size > 0.5 * largest and size != min(sizes)
        near = sum(
            1
            for s, a in placed
            if abs(math.log(size / s)) < 0.7 and abs(a - accuracy) < 0.1 * (high - low + 2 * margin)
        )
        placed.append((size, accuracy))
        axes.annotate(
            row.name,
            (size, accuracy),
            textcoords="offset points",
            xytext=(-8 if right_most else 8, 6 + 11 * near),
            ha="right" if right_most else "left",
        )
    axes.set_xscale("log")
    axes.set_xlim(min(sizes) / 2.5, largest * 2.5)
    axes.set_ylim(low - margin, high + margin)
    # Plain numbers at 1-2-5 steps; no labels on the minor ticks (they ran together).
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("saved model size (MB, log scale)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _environment_lines(environment):
    if not isinstance(environment, dict):
        return f"Environment: {environment}"
    packages = environment.get("packages", {})
    lines = [f"- {key}: {value}" for key, value in environment.items() if key != "packages"]
    lines.append("- packages: " + ", ".join(f"{name} {version}" for name, version in packages.items()))
    return "## Environment\n\n" + "\n".join(lines)


def write_report(folder, dataset, rows, metadata=None, columns=MODEL_COLUMNS):
    """Write `report.json`, `report.md` and `report.png` for `rows` into `folder`.

    `report.json` holds `{"dataset": ..., "models": [row, ...], "metadata": {...}}`; the metadata
    gets `"environment"` (`keras_kd.jobs.report.environment.run_environment()`: the engine, Python and
    the version of every package the run imported) unless it has one.
    """
    with atomic.replaced_file(os.path.join(folder, "report.png"), suffix=".png") as temporary:
        _plot(rows, temporary, f"{dataset}: accuracy against size")
    metadata = dict(metadata or {})
    metadata.setdefault("environment", run_environment())  # engine, Python and every package's version
    payload = {"dataset": dataset, "models": [row.as_dict() for row in rows], "metadata": metadata}
    # Each file is written under a temporary name and renamed: a killed run leaves the old one whole.
    atomic.write_json(os.path.join(folder, "report.json"), payload)
    details = "\n".join(f"- {key}: {value}" for key, value in metadata.items() if key != "environment")
    details += "\n\n" + _environment_lines(metadata["environment"])
    markdown = f"# keras-kd report: {dataset}\n\n{format_table(rows, columns)}\n\n{details}\n"
    atomic.write_text(os.path.join(folder, "report.md"), markdown)
