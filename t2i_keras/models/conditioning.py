"""How captions enter the networks: sentence embeddings standardized with the dataset's statistics.

USE embeddings of one dataset's captions share most of their direction (the template, "this
flower has ... petals"): "red petals" and "pink petals" captions have cosine 0.87, while two
wordings of the same flower have 0.6. Subtracting the dataset's mean embedding and dividing by its
per-dimension spread makes the words that tell images apart dominate. On the procedural flowers
this lifts petal-colour agreement after 1,500 quickstart steps from 52% to 92%.

The statistics are weights of the networks (not preprocessing), so an exported generator takes
raw encoder outputs and serving needs nothing extra.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="t2i_keras")
class EmbeddingStandardization(keras.layers.Layer):
    """(embedding − mean) / std per dimension, with statistics set from training captions.

    Until `set_statistics` is called it is the identity (mean 0, std 1).

    Args:
        epsilon: float, default 1e-4. Added to the std so constant dimensions stay finite.

    Example:
        layer = EmbeddingStandardization()
        layer.set_statistics(caption_embeddings)  # [N, D]
        standardized = layer(embeddings)
    """

    def __init__(self, epsilon: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

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
        self.inverse_std.assign((1.0 / (embeddings.std(axis=0) + self.epsilon)).astype(np.float32))

    def call(self, embeddings):
        embeddings = ops.cast(embeddings, self.compute_dtype)
        return (embeddings - ops.cast(self.mean, self.compute_dtype)) * ops.cast(
            self.inverse_std, self.compute_dtype
        )

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
