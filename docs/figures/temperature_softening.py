"""Draws docs/images/temperature_softening.png: how the temperature T softens a teacher's output.

    python docs/figures/temperature_softening.py [OUTPUT.png]

The logits are one illustrative teacher output for a Fashion-MNIST image of a shirt (chosen
by hand, not measured): confident about "shirt", with "T-shirt/top", "pullover" and "coat" as
the plausible confusions. The left panel is softmax(logits / T) for several T; the right panel
is how much of the probability lies outside the top class, and the entropy, as T grows.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
LOGITS = np.array([4.0, -2.0, 3.0, 0.5, 2.5, -4.0, 7.0, -3.5, -1.0, -4.5])
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "images", "temperature_softening.png")


def softmax(logits, temperature):
    z = logits / temperature
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def main(output=OUTPUT):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(TEMPERATURES)
    x = np.arange(len(CLASSES))
    for i, temperature in enumerate(TEMPERATURES):
        left.bar(
            x + (i - (len(TEMPERATURES) - 1) / 2) * width,
            softmax(LOGITS, temperature),
            width,
            label=f"T = {temperature:g}",
        )
    left.set_xticks(x, CLASSES, rotation=35, ha="right")
    left.set_ylabel("probability")
    left.set_ylim(0, 1)
    left.set_title("softmax(teacher logits / T) for one shirt image")
    left.legend()

    grid = np.geomspace(0.25, 20, 200)
    outside = [1 - softmax(LOGITS, t).max() for t in grid]
    entropy = [-(p * np.log(p)).sum() / np.log(len(CLASSES)) for p in (softmax(LOGITS, t) for t in grid)]
    right.plot(grid, outside, label="probability outside the top class")
    right.plot(grid, entropy, label="entropy / log(10)")
    right.set_xscale("log")
    right.set_xlabel("temperature T")
    right.set_ylim(0, 1)
    right.set_title("softer as T grows")
    right.legend(loc="upper left", fontsize=8)
    for temperature in TEMPERATURES:
        right.axvline(temperature, color="0.85", linewidth=0.8, zorder=0)

    fig.tight_layout()
    os.makedirs(os.path.dirname(output), exist_ok=True)
    fig.savefig(output, dpi=110)
    print(f"wrote {os.path.normpath(output)}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
