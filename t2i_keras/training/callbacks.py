"""Keras callbacks for GAN runs: sample grids, training curves and atomic checkpoints."""

from __future__ import annotations

import json
import math
import pathlib
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from t2i_keras.utils import files, plots
from t2i_keras.utils.files import save_model_atomically
from t2i_keras.utils.sampling import sample_grid


class SampleGrid(keras.callbacks.Callback):
    """Draws the same captions with the same noise after every epoch, with the EMA generator.

    Fixed inputs make successive grids comparable: a person sees conditioning emerge epoch by
    epoch. Grids go to `<folder>/epoch_XXXX.png` and `latest.png`, and to TensorBoard as images.

    Args:
        captions: the caption of each grid row.
        embeddings: float32 [rows, D], the captions' embeddings.
        folder: where PNG files go.
        samples_per_caption: columns of the grid.
        seed: seeds the fixed noise.
        log_dir: TensorBoard folder, or None.
    """

    def __init__(
        self,
        captions: Sequence[str],
        embeddings: np.ndarray,
        folder: str | pathlib.Path,
        samples_per_caption: int = 8,
        seed: int = 0,
        log_dir: str | pathlib.Path | None = None,
    ):
        super().__init__()
        self.captions = list(captions)
        self.columns = samples_per_caption
        self.embeddings = np.asarray(embeddings, np.float32)
        self.seed = seed
        self.folder = pathlib.Path(folder)
        self.writer = tf.summary.create_file_writer(str(log_dir)) if log_dir else None

    def draw(self) -> np.ndarray:
        """The current grid images, uint8 [rows, columns, H, W, 3]."""
        return sample_grid(
            self.model.generate,
            self.embeddings,
            self.columns,
            self.seed,
            self.model.generator.z_dim,
        )

    def on_epoch_end(self, epoch, logs=None):
        grid = self.draw()
        title = f"epoch {epoch + 1}"
        path = self.folder / f"epoch_{epoch + 1:04d}.png"
        plots.save_caption_grid(grid, self.captions, path, title)
        files.atomic_write_bytes(self.folder / "latest.png", path.read_bytes())
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples", grid[:, 0], step=epoch + 1, max_outputs=len(grid))
            self.writer.flush()


class TrainingCurves(keras.callbacks.Callback):
    """Keeps every epoch's logs in `history.json` and redraws `training_curves.png`."""

    def __init__(self, run_dir: str | pathlib.Path):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        history_file = self.run_dir / "history.json"
        # A resumed run continues the curves it already drew.
        self.history = json.loads(history_file.read_text()) if history_file.exists() else {}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            values = self.history.setdefault(name, [])
            del values[epoch:]
            values.append(float(value))
        history = json.dumps(self.history, indent=1).encode()
        files.atomic_write_bytes(self.run_dir / "history.json", history)
        plots.save_training_curves(self.history, self.run_dir / "training_curves.png")
        if "measured_minutes" in self.history:  # GenerationMetrics ran (train.eval_every)
            plots.save_metrics_over_time(self.history, self.run_dir / "metrics_over_time.png")


class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (config + weights) as `.keras` after each epoch, atomically.

    The file is written under a temporary name and renamed over the previous checkpoint, so a
    kill during the write leaves the previous, loadable checkpoint in place.
    """

    def __init__(self, path: str | pathlib.Path):
        super().__init__()
        self.path = pathlib.Path(path)

    def on_epoch_end(self, epoch, logs=None):
        if finite_logs(logs):  # never keep NaN weights
            save_model_atomically(self.model, self.path)


def finite_logs(logs) -> bool:
    """True when every value in a callback's logs is finite (no NaN/Inf loss)."""
    return all(math.isfinite(float(v)) for v in (logs or {}).values())


class StepTimer(keras.callbacks.Callback):
    """Wall-clock time of every optimizer step, summarized into `timing.json` after training.

    The median is the number to compare configurations by: it leaves out the first step's graph
    tracing and the epoch ends' samples and checkpoints, which the total includes.

    Args:
        path: where `timing.json` goes ({"steps", "seconds", "seconds_per_step"}).
    """

    def __init__(self, path: str | pathlib.Path):
        super().__init__()
        self.path = pathlib.Path(path)
        self.durations: list[float] = []
        self._started = 0.0
        self._began = None

    def on_train_begin(self, logs=None):
        self._began = self._began or time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self._started)

    def on_train_end(self, logs=None):
        if not self.durations:
            return
        summary = {
            "steps": len(self.durations),
            "seconds": time.perf_counter() - self._began,
            "seconds_per_step": float(np.median(self.durations)),
        }
        files.atomic_write_bytes(self.path, (json.dumps(summary, indent=2) + "\n").encode())
