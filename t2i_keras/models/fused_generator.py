"""A generator that fuses the sentence into every block (DF-GAN, Tao et al., CVPR 2022)."""

from __future__ import annotations

import keras
from keras import layers, ops

from t2i_keras.models.conditioning import EmbeddingStandardization
from t2i_keras.models.fusion import FusedUpBlock
from t2i_keras.models.layers import DATA_FORMAT, block_filters, upsampling_blocks


@keras.saving.register_keras_serializable(package="t2i_keras")
class FusedGenerator(keras.Model):
    """Caption embedding + noise -> image in [-1, 1], the caption steering every block.

    The noise is projected to a 4x4 seed (Tao et al. 2022, §3.1). Every up-sampling block
    (`t2i_keras.fusion.FusedUpBlock`) modulates its features twice with affine transforms
    predicted from [noise, standardized caption embedding], so colour, shape, count and centre
    words can act at the resolution where they show. A LeakyReLU, a 3x3 convolution and tanh
    give the image. It has no batch normalization: one caption's image never depends on the other
    captions of a batch. The output is float32 under any mixed-precision policy.

    Args:
        image_size: int, default 64. Output side: 16, 32, 64, 128 or 256.
        embedding_dim: int, default 512. Size of the caption embeddings (USE: 512).
        z_dim: int, default 100. Noise size.
        filters: int, default 32. Width of the last block (DF-GAN's nf); widths double towards
            the 4x4 seed, capped at 8x.
        embedding_normalization: str, default "centre". How caption embeddings are normalized
            before they condition the network (`t2i_keras.conditioning`).
        seed: int or None, default None. Kept for config symmetry with `Generator`.

    Example:
        generator = FusedGenerator(image_size=32)
        images = generator([embeddings, noise])  # [B, 32, 32, 3]
    """

    # The train step's conditioning-augmentation branch reads this; deep fusion has no CA.
    conditioning_augmentation = False

    def __init__(
        self,
        image_size: int = 64,
        embedding_dim: int = 512,
        z_dim: int = 100,
        filters: int = 32,
        embedding_normalization: str = "centre",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.z_dim = z_dim
        self.filters = filters
        self.embedding_normalization = embedding_normalization
        self.seed = seed

        widths = block_filters(filters, upsampling_blocks(image_size) + 1)
        self.embedding_norm = EmbeddingStandardization(
            mode=embedding_normalization, dtype="float32", name="embedding_norm"
        )
        self.seed_projection = layers.Dense(4 * 4 * widths[0], name="seed")
        self.seed_reshape = layers.Reshape((4, 4, widths[0]))
        self.up_blocks = [
            FusedUpBlock(w_in, w_out, name=f"up{i}")
            for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:]))
        ]
        self.to_rgb = layers.Conv2D(3, 3, padding="same", data_format=DATA_FORMAT, name="to_rgb")
        self.output_activation = layers.Activation("tanh", dtype="float32")

    def build(self, input_shape):
        embedding_shape, noise_shape = input_shape
        batch = embedding_shape[0]
        condition_shape = (batch, self.embedding_dim + self.z_dim)
        self.embedding_norm.build(embedding_shape)
        self.seed_projection.build(noise_shape)
        size, width = 4, self.seed_projection.units // 16
        for block in self.up_blocks:
            block.build(((batch, size, size, width), condition_shape))
            size, width = 2 * size, block.out_channels
        self.to_rgb.build((batch, size, size, width))

    def condition(self, embeddings, noise):
        """[noise, standardized embedding]: what every fusion block reads (DF-GAN §3.2)."""
        text = self.embedding_norm(embeddings)
        return ops.concatenate(
            [ops.cast(noise, self.compute_dtype), ops.cast(text, self.compute_dtype)], -1
        )

    def generate(self, embeddings, noise, training=False):
        """Images and a zero KL term per example (the train step's interface; no CA here)."""
        condition = self.condition(embeddings, noise)
        x = self.seed_reshape(self.seed_projection(ops.cast(noise, self.compute_dtype)))
        for block in self.up_blocks:
            x = block([x, condition])
        images = self.output_activation(self.to_rgb(ops.leaky_relu(x, 0.2)))
        return images, ops.zeros(ops.shape(images)[:1], dtype="float32")

    def call(self, inputs, training=False):
        embeddings, noise = inputs
        return self.generate(embeddings, noise, training=training)[0]

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "embedding_dim": self.embedding_dim,
            "z_dim": self.z_dim,
            "filters": self.filters,
            "embedding_normalization": self.embedding_normalization,
            "seed": self.seed,
        }
