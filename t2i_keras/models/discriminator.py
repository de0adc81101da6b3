"""The matching-aware discriminator of GAN-CLS (Reed et al. 2016, §4.1-4.2)."""

from __future__ import annotations

import keras
from keras import layers, ops

from t2i_keras.models import layers as dcgan
from t2i_keras.models.conditioning import EmbeddingStandardization
from t2i_keras.models.kinds import CONDITIONING_KINDS


@keras.saving.register_keras_serializable(package="t2i_keras")
class Discriminator(keras.Model):
    """(image, caption embedding) -> one logit: is this a real image that matches the caption?

    Strided 4x4 convolutions with LeakyReLU(0.2) bring the image down to 4x4 (DCGAN). With
    `conditioning="concat"` (Reed §4.1) the caption, projected to `text_projection_dim`, is tiled
    over the 4x4 grid and concatenated with the image features before a 1x1 and a 4x4
    convolution. With `conditioning="projection"` (Miyato & Koyama 2018) the logit is
    psi(phi(x)) + <W e, phi(x)>, which conditions through an inner product instead.

    Args:
        image_size: int, default 64. Input side: 16, 32, 64, 128 or 256.
        embedding_dim: int, default 512. Size of the caption embeddings.
        text_projection_dim: int, default 128. Size of the projected caption (concat only).
        filters: int, default 64. Width of the first block (DCGAN's ndf), doubling per block.
        spectral_norm: bool, default False. Spectral normalization of every weight (Miyato et
            al. 2018), which replaces batch normalization.
        conditioning: str, default "concat". "concat" or "projection".
        embedding_normalization: str, default "whiten" (`t2i_keras.conditioning`).
        unconditional_output: bool, default False. Projection only: also return psi(phi(x)), the
            caption-blind realism logit, as a second column ([B, 2]), for the train step's
            unconditional loss (StackGAN++, Zhang et al. 2018, §3.2).
        patch_realism: bool, default False. Also return one caption-blind realism logit per cell
            of the 8x8 feature map before the last down block (PatchGAN, Isola et al. 2017), as
            columns 1..64 ([B, 65]). The global logit is dominated by the easy question, does
            the colour match the caption; a logit per patch, each seeing a petal-sized part of
            the image, has to judge edges and shapes where they are.

    Example:
        discriminator = Discriminator(image_size=64)
        logits = discriminator([images, embeddings])  # [B]
    """

    def __init__(
        self,
        image_size: int = 64,
        embedding_dim: int = 512,
        text_projection_dim: int = 128,
        filters: int = 64,
        spectral_norm: bool = False,
        conditioning: str = "concat",
        embedding_normalization: str = "whiten",
        unconditional_output: bool = False,
        patch_realism: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embedding_normalization = embedding_normalization
        if unconditional_output and conditioning != "projection":
            raise ValueError(
                "unconditional_output needs conditioning='projection' (its psi(phi(x)) term is "
                "the caption-blind logit)"
            )
        if unconditional_output and patch_realism:
            raise ValueError(
                "unconditional_output and patch_realism are two kinds of caption-blind realism "
                "logit: choose one"
            )
        self.unconditional_output = unconditional_output
        self.patch_realism = patch_realism
        if conditioning not in CONDITIONING_KINDS:
            raise ValueError(
                f"conditioning must be one of {CONDITIONING_KINDS}, got {conditioning!r}"
            )
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.text_projection_dim = text_projection_dim
        self.filters = filters
        self.spectral_norm = spectral_norm
        self.conditioning = conditioning

        widths = dcgan.block_filters(filters, dcgan.upsampling_blocks(image_size))[::-1]
        self.embedding_norm = EmbeddingStandardization(
            mode=embedding_normalization, dtype="float32", name="embedding_norm"
        )
        self.down_blocks = []
        for i, width in enumerate(widths):
            # No batch norm on the first block (DCGAN) nor with spectral norm (Miyato et al.).
            # A bias before batch norm is cancelled by it: its gradient is pure round-off, which
            # Adam would scale up to full-size steps, so such convolutions have none.
            normed = i > 0 and not spectral_norm
            self.down_blocks.append(
                self._normalized(
                    dcgan.conv(
                        width, 4, strides=2, padding="same", use_bias=not normed, name=f"down{i}"
                    )
                )
            )
            if normed:
                self.down_blocks.append(dcgan.batch_norm(name=f"down{i}_norm"))
            self.down_blocks.append(layers.LeakyReLU(0.2))
            if i == len(widths) - 2:
                # The 8x8 map: the patch logits read it once its block's activation is applied.
                self.patch_input_index = len(self.down_blocks) - 1
        self.patch_logits = (
            self._normalized(dcgan.conv(1, 1, name="patch_logits")) if patch_realism else None
        )
        last = widths[-1]
        if conditioning == "concat":
            self.text_projection = self._normalized(
                dcgan.dense(text_projection_dim, name="text_projection")
            )
            self.joint_conv = self._normalized(
                dcgan.conv(last, 1, use_bias=spectral_norm, name="joint")
            )
            self.joint_norm = None if spectral_norm else dcgan.batch_norm(name="joint_norm")
            self.to_logit = self._normalized(dcgan.conv(1, 4, padding="valid", name="logit"))
        else:
            self.features = self._normalized(dcgan.conv(last, 4, padding="valid", name="phi"))
            self.psi = self._normalized(dcgan.dense(1, name="psi"))
            self.text_embedding = self._normalized(dcgan.dense(last, use_bias=False, name="embed"))

    def _normalized(self, layer):
        return layers.SpectralNormalization(layer) if self.spectral_norm else layer

    def call(self, inputs, training=False):
        return self._forward(*inputs, training=training, with_codes=False)

    def logits_and_codes(self, inputs, training=False):
        """`call`'s logits and, from the same pass, the unit vectors the contrastive loss
        compares: phi(x) per image and W e per caption ([B, D] each, float32). Their inner
        product is the cosine of the projection term <W e, phi(x)>. Projection conditioning
        only (concat has no W e)."""
        if self.conditioning != "projection":
            raise ValueError(
                "contrastive codes need conditioning='projection': they are phi(x) and the "
                "embedded captions W e"
            )
        return self._forward(*inputs, training=training, with_codes=True)

    def _forward(self, images, embeddings, training, with_codes):
        embeddings = self.embedding_norm(embeddings)
        codes = None
        x = images
        patches = None
        for i, layer in enumerate(self.down_blocks):
            x = layer(x, training=training)  # reaches batch and spectral norm; others ignore it
            if self.patch_logits is not None and i == self.patch_input_index:
                patches = self.patch_logits(x, training=training)
                patches = ops.cast(ops.reshape(patches, (-1, patches.shape[1] ** 2)), "float32")
        if self.conditioning == "concat":
            text = ops.leaky_relu(self.text_projection(embeddings, training=training), 0.2)
            text = ops.tile(text[:, None, None, :], [1, 4, 4, 1])
            x = ops.concatenate([x, ops.cast(text, x.dtype)], axis=-1)
            x = self.joint_conv(x, training=training)
            if self.joint_norm is not None:
                x = self.joint_norm(x, training=training)
            logits = ops.reshape(self.to_logit(ops.leaky_relu(x, 0.2), training=training), (-1, 1))
        else:
            phi = self.features(x, training=training)
            phi = ops.leaky_relu(ops.reshape(phi, (-1, phi.shape[-1])), 0.2)
            text = ops.cast(self.text_embedding(embeddings, training=training), phi.dtype)
            projection = ops.sum(text * phi, axis=-1, keepdims=True)
            realism = self.psi(phi, training=training)
            logits = realism + projection
            if with_codes:
                codes = (_unit(phi), _unit(text))
            if self.unconditional_output:
                logits = ops.concatenate([logits, realism], axis=-1)
        logits = ops.cast(logits, "float32")
        if patches is not None:
            logits = ops.concatenate([logits, patches], axis=-1)
        elif not self.unconditional_output:
            logits = ops.reshape(logits, (-1,))
        return logits if codes is None else (logits, *codes)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "embedding_normalization": self.embedding_normalization,
            "unconditional_output": self.unconditional_output,
            "patch_realism": self.patch_realism,
            "embedding_dim": self.embedding_dim,
            "text_projection_dim": self.text_projection_dim,
            "filters": self.filters,
            "spectral_norm": self.spectral_norm,
            "conditioning": self.conditioning,
        }


def _unit(vectors):
    """Rows scaled to unit length (float32 underneath, so bf16 cannot round a norm to zero)."""
    vectors = ops.cast(vectors, "float32")
    return vectors * ops.rsqrt(ops.sum(ops.square(vectors), axis=-1, keepdims=True) + 1e-12)
