"""Training a user can look at: every model's epochs in `history.json`, and its learning curves.

`curves.png` puts both students on one figure against optimizer steps (their epochs differ in
length: the student from labels sees only the labelled examples), validation accuracy on the
left with the epoch each kept marked, the loss terms on the right. Two students that trained
identically show as one curve.
"""

import os

from keras_kd import atomic

COLORS = {"teacher": "tab:gray", "student_scratch": "tab:blue", "student_kd": "tab:orange", "assistant": "tab:green"}
LOSS_TERMS = (("loss", "-"), ("student_loss", "--"), ("distillation_loss", ":"))


def write_history(folder, records):
    """`history.json`: per role, the Keras model's name, the epoch kept, and every epoch's logs."""
    atomic.write_json(os.path.join(folder, "history.json"), records)


def _steps(record, epochs):
    per_epoch = record.get("steps_per_epoch") or 1
    return [epoch * per_epoch for epoch in epochs]


def plot_curves(records, path, title):
    """Validation accuracy and loss terms of every role in `records` against optimizer steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    by_steps = all(record.get("steps_per_epoch") for record in records.values())
    last = max(
        (_steps(record, [record["epochs"][-1]["epoch"]])[0] for record in records.values() if record["epochs"]),
        default=1,
    )
    for role, record in records.items():
        color = COLORS.get(role)
        validated = [entry for entry in record["epochs"] if "val_accuracy" in entry]
        if validated:
            epochs = [entry["epoch"] for entry in validated]
            left.plot(_steps(record, epochs), [100 * e["val_accuracy"] for e in validated], color=color, label=role)
        if record.get("best_epoch") is not None:
            best = _steps(record, [record["best_epoch"]])[0]
            left.scatter([best], [100 * record["validation_accuracy"]], color=color, marker="*", s=160, zorder=3)
            right_half = best > last / 2  # its label to the left, so that none runs off the plot
            left.annotate(
                f"kept: epoch {record['best_epoch']}",
                (best, 100 * record["validation_accuracy"]),
                textcoords="offset points",
                xytext=(-8, -14) if right_half else (6, -14),
                ha="right" if right_half else "left",
                color=color,
                fontsize=8,
            )
        for term, style in LOSS_TERMS:
            points = [(entry["epoch"], entry[term]) for entry in record["epochs"] if term in entry]
            if points and not (term == "loss" and any("student_loss" in entry for entry in record["epochs"])):
                epochs, values = zip(*points)
                right.plot(_steps(record, epochs), values, style, color=color, label=f"{role}: {term}")
    unit = "optimizer steps" if by_steps else "epochs"
    left.set(xlabel=unit, ylabel="validation accuracy (%)", title="validation accuracy (★ the epoch kept)")
    right.set(xlabel=unit, ylabel="training loss", title="loss terms", yscale="log")
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic.replaced_file(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=110)
    plt.close(figure)
