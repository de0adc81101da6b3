"""How captions enter the networks: sentence embeddings standardized with the dataset's statistics.

USE embeddings of one dataset's captions share most of their direction (the template, "this
flower has ... petals"): "red petals" and "pink petals" captions have cosine 0.87, while two
wordings of the same flower have 0.6. Subtracting the dataset's mean embedding and dividing by its
per-dimension spread makes the words that tell images apart dominate. On the procedural flowers
this lifts petal-colour agreement after 1,500 quickstart steps from 52% to 92%.

Per-dimension whitening distorts the encoder's geometry, though: dimensions along which the
training captions barely vary get multiplied by up to 1/epsilon, so a paraphrase or a translation
that USE places right next to a training caption, but that differs in such a dimension, lands far
from every training caption after whitening. `mode="centre"` subtracts the mean and divides every
dimension by one common scale (the centred embeddings' RMS per dimension): the template direction
is gone, and distances and angles between captions are the encoder's own, up to that scale.

The statistics are weights of the networks (not preprocessing), so an exported generator takes
raw encoder outputs and serving needs nothing extra.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from t2i_keras.models.kinds import NORMALIZATION_MODES


@keras.saving.register_keras_serializable(package="t2i_keras")
class EmbeddingStandardization(keras.layers.Layer):
    """(embedding − mean) / scale, with statistics set from training captions.

    Until `set_statistics` is called it is the identity (mean 0, scale 1).

    Args:
        epsilon: float, default 1e-4. Added to the scale so constant dimensions stay finite.
        mode: str, default "whiten". "whiten" divides each dimension by its own std; "centre"
            divides all by the RMS of the per-dimension stds, keeping the encoder's geometry.

    Example:
        layer = EmbeddingStandardization()
        layer.set_statistics(caption_embeddings)  # [N, D]
        standardized = layer(embeddings)
    """

    def __init__(self, epsilon: float = 1e-4, mode: str = "whiten", **kwargs):
        super().__init__(**kwargs)
        if mode not in NORMALIZATION_MODES:
            raise ValueError(f"mode must be one of {NORMALIZATION_MODES}, got {mode!r}")
        self.epsilon = epsilon
        self.mode = mode

    def build(self, input_shape):
        dim = input_shape[-1]
        self.mean = self.add_weight(shape=(dim,), initializer="zeros", trainable=False, name="mean")
        self.inverse_std = self.add_weight(
            shape=(dim,), initializer="ones", trainable=False, name="inverse_std"
        )

    def set_statistics(self, embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, np.float64).reshape(-1, embeddings.shape[-1])
        if not self.built:
            self.build(embeddings.shape)
        if len(embeddings) < 2:
            raise ValueError("set_statistics needs at least two embeddings to measure a spread")
        self.mean.assign(embeddings.mean(axis=0).astype(np.float32))
        std = embeddings.std(axis=0)
        if self.mode == "centre":
            std = np.full_like(std, np.sqrt(np.mean(std**2)))
        self.inverse_std.assign((1.0 / (std + self.epsilon)).astype(np.float32))

    def call(self, embeddings):
        embeddings = ops.cast(embeddings, self.compute_dtype)
        return (embeddings - ops.cast(self.mean, self.compute_dtype)) * ops.cast(
            self.inverse_std, self.compute_dtype
        )

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "mode": self.mode}
