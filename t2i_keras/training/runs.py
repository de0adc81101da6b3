"""A finished (or interrupted) training run: load it, draw from it, export it for TF Serving.

The run-directory layout is described in `t2i_keras.training.trainer`.
"""

from __future__ import annotations

import os
import pathlib

import keras
import numpy as np

from t2i_keras.config import Config
from t2i_keras.data.splits import load_split
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.serving.caption_cache import DEFAULT_CAPACITY
from t2i_keras.serving.export import DEFAULT_MAX_BATCH, export_saved_model
from t2i_keras.text.anchors import DEFAULT_SNAP_THRESHOLD, NearestCaptionSnap
from t2i_keras.text.embeddings import embed_captions
from t2i_keras.text.encoder import TextEncoder
from t2i_keras.utils.sampling import sample_grid


def load_run(run_dir: str | pathlib.Path) -> tuple[TextToImageGAN, Config]:
    """The trained GAN and config of a run (the final model, else the last checkpoint)."""
    run_dir = pathlib.Path(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json")
    config = Config.load(config_file)
    for candidate in (run_dir / "model.keras", run_dir / "checkpoints" / "last.keras"):
        if candidate.exists():
            return keras.saving.load_model(candidate, compile=False), config
    raise FileNotFoundError(
        f"{run_dir} holds no model.keras nor checkpoints/last.keras: "
        "has training finished an epoch?"
    )


def generate_images(
    gan: TextToImageGAN,
    encoder: TextEncoder,
    captions: list[str],
    num_per_caption: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """uint8 [len(captions), num_per_caption, H, W, 3] from the EMA generator; seeded noise."""
    embeddings = embed_captions(captions, encoder, cache_root=False, progress=False)
    return sample_grid(gan.generate, embeddings, num_per_caption, seed, gan.generator.z_dim)


def export_run(
    run_dir: str | os.PathLike,
    export_root: str | os.PathLike,
    version: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    model_name: str | None = None,
    caption_cache: int = DEFAULT_CAPACITY,
    caption_snap: float = DEFAULT_SNAP_THRESHOLD,
) -> pathlib.Path:
    """Exports a training run (its final model, else its last checkpoint) with its text encoder.

    With `caption_snap` (a cosine threshold; 0 is off) the export also holds the run's training
    caption embeddings and draws captions far from all of them as their nearest one
    (`t2i_keras.text.anchors`); the training split is read (and embedded, cached) for it.
    """
    gan, config = load_run(run_dir)
    encoder = TextEncoder(config.text_encoder)
    snap = None
    if caption_snap:
        try:
            train = load_split(config, "train", encoder)
        except (FileNotFoundError, ValueError) as error:
            raise ValueError(
                f"{error}\nThe caption snap holds the run's training captions, which could not "
                "be read: make the training data readable, or export with --caption-snap 0"
            ) from error
        snap = NearestCaptionSnap.from_training_embeddings(
            train.real_embeddings(), caption_snap, seed=config.data.seed
        )
    return export_saved_model(
        gan, encoder, export_root, version, max_batch, model_name, caption_cache, snap
    )
