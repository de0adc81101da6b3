"""Fault-tolerant training: a backup every N steps, restored when the same command runs again.

Keras' `BackupAndRestore` resumes at the start of the interrupted epoch and writes its weights file
in place (a kill mid-write leaves a file that fails to load). Here a backup holds every variable
that decides the rest of the run (both networks, the EMA generator, both optimizers' slots and
step counters, random-generator states) plus the global step; the input pipeline is a function of
the step (`training_dataset(start_step=...)`), so a resumed run continues bit-for-bit where the
killed one was (with op determinism on) instead of approximately.

Each backup is written into a temporary folder, renamed to `step_<n>/`, and only then named in the
`latest` file (also replaced atomically): a kill at any point leaves the previous backup usable.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import keras
import numpy as np

from t2i_keras.training.callbacks import finite_logs
from t2i_keras.utils.files import atomic_directory, atomic_write_bytes

WEIGHTS_FILE = "model.keras"


class TrainingBackup:
    """Writes and restores backups of a compiled TextToImageGAN in `directory`.

    A backup is Keras' own `.keras` file of the model (its attributes reach both networks, the
    EMA generator and both optimizers; `load_weights` reads them back) plus `state.json` with the
    step and the random generators' states, which Keras' weights leave out.

    Args:
        gan: a compiled TextToImageGAN.
        directory: str or path; created on the first write.
        keep: int, default 2. How many backups to keep on disk.

    Example:
        backup = TrainingBackup(gan, "runs/x/backup")
        start_step = backup.restore()  # 0 when there is nothing to restore
    """

    def __init__(self, gan, directory: str | pathlib.Path, keep: int = 2):
        self.gan = gan
        self.directory = pathlib.Path(directory)
        self.keep = keep

    def _rng_states(self):
        return [v for v in self.gan.variables if v.path.endswith("seed_generator_state")]

    def latest(self) -> pathlib.Path | None:
        pointer = self.directory / "latest"
        if not pointer.exists():
            return None
        path = self.directory / pointer.read_text().strip()
        if not (path / "state.json").exists():
            raise FileNotFoundError(
                f"{pointer} names {path.name}, which is missing or incomplete: the backup folder "
                "was edited by hand; delete it to start over"
            )
        return path

    def restore(self) -> int:
        """Loads the latest backup into the model and optimizers; returns its step (0 if none)."""
        path = self.latest()
        if path is None:
            return 0
        weights = path / WEIGHTS_FILE
        # Backups written before the switch to `.keras` hold a bare HDF5 weights file.
        self.gan.load_weights(weights if weights.exists() else path / "model.weights.h5")
        state = json.loads((path / "state.json").read_text())
        for variable, value in zip(self._rng_states(), state["rng_states"], strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        return int(state["step"])

    def save(self, step: int) -> pathlib.Path:
        name = f"step_{step:09d}"
        target = self.directory / name
        state = {"step": step, "rng_states": [np.asarray(v).tolist() for v in self._rng_states()]}
        # Rewriting a step that `latest` may name moves the old copy aside only once the new one
        # is complete, instead of deleting it before writing.
        with atomic_directory(target, overwrite=True) as tmp:
            # A `.keras` archive, not `save_weights`' `.weights.h5`: Keras builds the archive's
            # HDF5 part in memory and Python writes the file, so a full disk raises an OSError;
            # h5py writing to a full disk itself crashes the process (segfault, h5py 3.x).
            self.gan.save(tmp / WEIGHTS_FILE)
            (tmp / "state.json").write_text(json.dumps(state))
        atomic_write_bytes(self.directory / "latest", name.encode())
        for old in sorted(self.directory.glob("step_*"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target


class BackupEverySteps(keras.callbacks.Callback):
    """Writes a `TrainingBackup` every `every` steps and at each epoch's end; never after a
    non-finite loss (so the last backup is always a good one).

    Args:
        backup: TrainingBackup.
        every: int, steps between backups (0: only at epoch ends).
        start_step: int, the global step `fit` starts from (a resumed run's restored step).
    """

    def __init__(self, backup: TrainingBackup, every: int, start_step: int = 0):
        super().__init__()
        self.backup, self.every, self.step = backup, every, start_step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.every and self.step % self.every == 0 and finite_logs(logs):
            self.backup.save(self.step)

    def on_epoch_end(self, epoch, logs=None):
        if finite_logs(logs) and not (self.every and self.step % self.every == 0):
            self.backup.save(self.step)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN/Inf loss and remembers the step (`TerminateOnNaN` stops too,
    but the run would then save the broken weights as if training had finished)."""

    def __init__(self, start_step: int = 0):
        super().__init__()
        self.step, self.failed_at, self.failed_logs = start_step, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.failed_at is None and not finite_logs(logs):
            self.failed_at, self.failed_logs = self.step, dict(logs)
            self.model.stop_training = True
