"""The text-conditioned DCGAN generator of GAN-INT-CLS (Reed et al. 2016, §4.1)."""

from __future__ import annotations

import keras
from keras import layers, ops

from t2i_keras.models import layers as dcgan
from t2i_keras.models.conditioning import EmbeddingStandardization
from t2i_keras.models.losses import conditioning_augmentation_kl


@keras.saving.register_keras_serializable(package="t2i_keras")
class Generator(keras.Model):
    """Caption embedding + noise -> image in [-1, 1].

    The embedding is standardized with the training captions' statistics (`conditioning`),
    projected to `text_projection_dim` with a LeakyReLU (Reed §4.1), concatenated with the noise,
    projected to a 4x4 seed and up-sampled by transposed convolutions with batch normalization and
    ReLU (DCGAN, Radford et al. 2016) to `image_size`, ending in tanh. The output is float32 under
    any mixed-precision policy.

    Args:
        image_size: int, default 64. Output side: 16, 32, 64, 128 or 256.
        embedding_dim: int, default 512. Size of the caption embeddings (USE: 512).
        z_dim: int, default 100. Noise size.
        text_projection_dim: int, default 128. Size of the projected caption.
        filters: int, default 64. Width of the last up-sampling block (DCGAN's ngf).
        conditioning_augmentation: bool, default False. StackGAN's conditioning augmentation
            (Zhang et al. 2017, §3.1): the projection predicts a Gaussian and a sample of it
            conditions the image, which smooths the conditioning manifold; at inference the mean
            is used so outputs are deterministic given the noise.
        seed: int or None, default None. Seeds the conditioning-augmentation samples.
        embedding_normalization: str, default "whiten". How caption embeddings are normalized
            (`t2i_keras.conditioning`).
        text_bottleneck_dim: int, default 0 (off). Squeezes the standardized caption through
            tanh(W e) of this size plus Gaussian noise of std `text_bottleneck_noise`, taken from
            the first `text_bottleneck_dim` entries of the noise input (the rest is the usual
            z). A caption embedding names its one training image in all 512 dimensions, so an
            open text path lets the generator draw one image per caption and ignore z; a channel
            of a few bits passes what captions share (colours, shapes) and not which image it
            was. Deterministic given the noise, so exports and served images are unchanged in
            kind.
        text_bottleneck_noise: float, default 1.0. Std of the bottleneck's noise (the tanh is in
            [-1, 1], so 1.0 leaves about half a bit per dimension).

    Example:
        generator = Generator(image_size=64)
        images = generator([embeddings, noise])  # [B, 64, 64, 3]
    """

    def __init__(
        self,
        image_size: int = 64,
        embedding_dim: int = 512,
        z_dim: int = 100,
        text_projection_dim: int = 128,
        filters: int = 64,
        conditioning_augmentation: bool = False,
        seed: int | None = None,
        embedding_normalization: str = "whiten",
        text_bottleneck_dim: int = 0,
        text_bottleneck_noise: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if text_bottleneck_dim and not 0 < text_bottleneck_dim < z_dim:
            raise ValueError(
                f"text_bottleneck_dim must be in [1, z_dim) = [1, {z_dim}): its noise is taken "
                f"from the noise input, got {text_bottleneck_dim}"
            )
        if text_bottleneck_dim and conditioning_augmentation:
            raise ValueError(
                "text_bottleneck_dim and conditioning_augmentation both add noise to the caption: "
                "choose one"
            )
        self.text_bottleneck_dim = text_bottleneck_dim
        self.text_bottleneck_noise = text_bottleneck_noise
        self.embedding_normalization = embedding_normalization
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.z_dim = z_dim
        self.text_projection_dim = text_projection_dim
        self.filters = filters
        self.conditioning_augmentation = conditioning_augmentation
        self.seed = seed

        widths = dcgan.block_filters(filters, dcgan.upsampling_blocks(image_size))
        projected = text_projection_dim * (2 if conditioning_augmentation else 1)
        self.embedding_norm = EmbeddingStandardization(
            mode=embedding_normalization, dtype="float32", name="embedding_norm"
        )
        # Keras' default (Glorot) initialization: DCGAN's N(0, 0.02) would start the tanh at a
        # tenth of the noise's scale, with nothing of the caption getting through.
        self.text_bottleneck = (
            layers.Dense(text_bottleneck_dim, name="text_bottleneck")
            if text_bottleneck_dim
            else None
        )
        self.text_projection = dcgan.dense(projected, name="text_projection")
        self.text_activation = layers.LeakyReLU(0.2)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.seed_projection = dcgan.dense(4 * 4 * widths[0], use_bias=False, name="seed")
        self.seed_norm = dcgan.batch_norm(name="seed_norm")
        self.seed_reshape = layers.Reshape((4, 4, widths[0]))
        self.up_blocks = []
        for i, width in enumerate(widths[1:]):
            self.up_blocks += [
                dcgan.conv_transpose(
                    width, 4, strides=2, padding="same", use_bias=False, name=f"up{i}"
                ),
                dcgan.batch_norm(name=f"up{i}_norm"),
                layers.ReLU(),
            ]
        self.to_rgb = dcgan.conv_transpose(3, 4, strides=2, padding="same", name="to_rgb")
        self.output_activation = layers.Activation("tanh", dtype="float32")

    def condition(self, embeddings, noise, training=False):
        """The conditioning vector, the CA KL term per example (for the train step) and the noise
        left for z once the text bottleneck has taken its share."""
        text = self.embedding_norm(embeddings)
        if self.text_bottleneck is not None:
            k = self.text_bottleneck_dim
            channel_noise, noise = noise[:, :k], noise[:, k:]
            squeezed = ops.tanh(self.text_bottleneck(text))
            text = squeezed + self.text_bottleneck_noise * ops.cast(channel_noise, squeezed.dtype)
        projected = self.text_activation(self.text_projection(text))
        if not self.conditioning_augmentation:
            return projected, ops.zeros(ops.shape(projected)[:1], dtype="float32"), noise
        mean, log_sigma = ops.split(projected, 2, axis=-1)
        kl = conditioning_augmentation_kl(mean, log_sigma)
        if not training:
            return mean, kl, noise
        sample = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(log_sigma) * sample, kl, noise

    def generate(self, embeddings, noise, training=False):
        """Images and the CA KL term (zeros without CA), for the train step."""
        conditioning, kl, noise = self.condition(embeddings, noise, training=training)
        x = ops.concatenate([conditioning, ops.cast(noise, conditioning.dtype)], axis=-1)
        x = ops.relu(self.seed_norm(self.seed_projection(x), training=training))
        x = self.seed_reshape(x)
        for layer in self.up_blocks:
            x = layer(x, training=training)  # reaches batch and spectral norm; others ignore it
        return self.output_activation(self.to_rgb(x)), kl

    def call(self, inputs, training=False):
        embeddings, noise = inputs
        return self.generate(embeddings, noise, training=training)[0]

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "embedding_normalization": self.embedding_normalization,
            "embedding_dim": self.embedding_dim,
            "z_dim": self.z_dim,
            "text_projection_dim": self.text_projection_dim,
            "filters": self.filters,
            "conditioning_augmentation": self.conditioning_augmentation,
            "seed": self.seed,
            "text_bottleneck_dim": self.text_bottleneck_dim,
            "text_bottleneck_noise": self.text_bottleneck_noise,
        }
