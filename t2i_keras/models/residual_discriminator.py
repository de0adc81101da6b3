"""A residual, one-way matching-aware discriminator (DF-GAN, Tao et al., CVPR 2022, §3.3)."""

from __future__ import annotations

import keras
from keras import layers, ops

from t2i_keras.models.conditioning import EmbeddingStandardization
from t2i_keras.models.fusion import ResidualDownBlock
from t2i_keras.models.layers import DATA_FORMAT, block_filters, upsampling_blocks


@keras.saving.register_keras_serializable(package="t2i_keras")
class ResidualDiscriminator(keras.Model):
    """(image, caption embedding) -> one logit: is this a real image that matches the caption?

    A 3x3 convolution and residual down-sampling blocks (`t2i_keras.fusion.ResidualDownBlock`)
    bring the image to 4x4 features; the standardized caption embedding is tiled over them and a
    3x3 and a 4x4 convolution give the logit. One-way: a single output judges realism and
    text-image matching together, and the matching-aware gradient penalty smooths it around real,
    matching pairs (Tao et al. 2022, §3.3) instead of a separate unconditional output. No batch
    or spectral normalization (the penalty regularizes it), as in DF-GAN.

    Args:
        image_size: int, default 64. Input side: 16, 32, 64, 128 or 256.
        embedding_dim: int, default 512. Size of the caption embeddings.
        filters: int, default 32. Width of the first block (nf), doubling per block, capped at 8x.
        embedding_normalization: str, default "centre" (`t2i_keras.conditioning`).

    Example:
        discriminator = ResidualDiscriminator(image_size=32)
        logits = discriminator([images, embeddings])  # [B]
    """

    def __init__(
        self,
        image_size: int = 64,
        embedding_dim: int = 512,
        filters: int = 32,
        embedding_normalization: str = "centre",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.filters = filters
        self.embedding_normalization = embedding_normalization

        widths = block_filters(filters, upsampling_blocks(image_size) + 1)[::-1]
        self.embedding_norm = EmbeddingStandardization(
            mode=embedding_normalization, dtype="float32", name="embedding_norm"
        )
        self.from_rgb = layers.Conv2D(
            widths[0], 3, padding="same", data_format=DATA_FORMAT, name="from_rgb"
        )
        self.down_blocks = [
            ResidualDownBlock(w_in, w_out, name=f"down{i}")
            for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:]))
        ]
        self.joint_conv = layers.Conv2D(
            2 * filters, 3, padding="same", use_bias=False, data_format=DATA_FORMAT, name="joint"
        )
        self.to_logit = layers.Conv2D(
            1, 4, padding="valid", use_bias=False, data_format=DATA_FORMAT, name="logit"
        )

    def build(self, input_shape):
        image_shape, embedding_shape = input_shape
        batch, size = image_shape[0], self.image_size
        self.embedding_norm.build(embedding_shape)
        self.from_rgb.build(image_shape)
        width = self.from_rgb.filters
        for block in self.down_blocks:
            block.build((batch, size, size, width))
            size, width = size // 2, block.out_channels
        self.joint_conv.build((batch, 4, 4, width + self.embedding_dim))
        self.to_logit.build((batch, 4, 4, self.joint_conv.filters))

    def call(self, inputs, training=False):
        images, embeddings = inputs
        x = self.from_rgb(images)
        for block in self.down_blocks:
            x = block(x)
        text = ops.cast(self.embedding_norm(embeddings), x.dtype)
        x = ops.concatenate([x, ops.tile(text[:, None, None, :], [1, 4, 4, 1])], axis=-1)
        logits = self.to_logit(ops.leaky_relu(self.joint_conv(x), 0.2))
        return ops.cast(ops.reshape(logits, (-1,)), "float32")

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "embedding_dim": self.embedding_dim,
            "filters": self.filters,
            "embedding_normalization": self.embedding_normalization,
        }
