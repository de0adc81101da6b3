"""Pictures a person would rather look at than read: image grids with captions, training curves."""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: training machines and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from t2i_keras.utils.sampling import to_uint8  # noqa: E402


def save_caption_grid(
    images: np.ndarray,
    captions: Sequence[str],
    path: str | pathlib.Path,
    title: str | None = None,
) -> pathlib.Path:
    """Saves a PNG grid: one row per caption (its text on the left), one column per sample.

    Args:
        images: [len(captions), samples, H, W, 3], uint8 or float in [-1, 1].
        captions: the caption of each row.
        path: where to write the PNG (folders are created).
        title: optional figure title.
    """
    images = to_uint8(images)
    rows, columns = images.shape[:2]
    if rows != len(captions):
        raise ValueError(f"{rows} rows of images but {len(captions)} captions")
    # Each row: the caption panel is three tiles wide; images are drawn at ~1 inch per tile.
    figure = plt.figure(figsize=(columns + 3, rows * 1.05 + (0.4 if title else 0)), dpi=80)
    grid = figure.add_gridspec(rows, columns + 3, wspace=0.05, hspace=0.08)
    for r in range(rows):
        text_axis = figure.add_subplot(grid[r, :3])
        text_axis.axis("off")
        text_axis.text(
            1.0, 0.5, textwrap.fill(captions[r], 34), ha="right", va="center", fontsize=8
        )
        for c in range(columns):
            axis = figure.add_subplot(grid[r, 3 + c])
            axis.imshow(images[r, c], interpolation="nearest")
            axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=10)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight", pad_inches=0.1)
    plt.close(figure)
    return path


def save_training_curves(
    history: Mapping[str, Sequence[float]], path: str | pathlib.Path
) -> pathlib.Path:
    """Plots losses (left) and mean discriminator scores (right) per epoch as a PNG."""
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=90)
    for name, values in history.items():
        epochs = np.arange(1, len(values) + 1)
        if name.endswith("loss") or name == "gp":
            losses.plot(epochs, values, marker=".", label=name)
        elif name.startswith("d_"):
            scores.plot(epochs, values, marker=".", label=name)
    losses.set(title="losses", xlabel="epoch")
    scores.set(title="discriminator scores", xlabel="epoch")
    return _save_panels(figure, (losses, scores), path)


def save_metrics_over_time(
    history: Mapping[str, Sequence[float]], path: str | pathlib.Path
) -> pathlib.Path:
    """FID (left) and attribute accuracies (right) against training wall-clock minutes, from
    the `measured_minutes`, `fid` and `attributes_*` entries of a run's history, as a PNG."""
    minutes = np.asarray(history["measured_minutes"])
    figure, (quality, accuracy) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=90)
    quality.plot(minutes, np.asarray(history["fid"])[: len(minutes)], marker="o", label="FID")
    for name, values in history.items():
        if name.startswith("attributes_"):
            label = name.removeprefix("attributes_").replace("_", " ")
            accuracy.plot(minutes, np.asarray(values)[: len(minutes)], marker="o", label=label)
    quality.set(title="FID (lower is better)", xlabel="training minutes")
    accuracy.set(title="attribute accuracy", xlabel="training minutes", ylim=(0, 1))
    return _save_panels(figure, (quality, accuracy), path)


def _save_panels(figure, axes, path: str | pathlib.Path) -> pathlib.Path:
    """Grids and legends on every panel, then the figure written as a PNG and closed."""
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    figure.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
