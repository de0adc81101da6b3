"""The networks a config describes: the one place a config becomes a `TextToImageGAN`."""

from __future__ import annotations

from t2i_keras.config import Config
from t2i_keras.models.discriminator import Discriminator
from t2i_keras.models.fused_generator import FusedGenerator
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.models.generator import Generator
from t2i_keras.models.residual_discriminator import ResidualDiscriminator


def build_gan(config: Config, embedding_dim: int) -> TextToImageGAN:
    """The generator, discriminator and GAN wrapper described by `config` (not yet compiled)."""
    generator, discriminator = _networks(config, embedding_dim)
    t = config.train
    return TextToImageGAN(
        generator,
        discriminator,
        loss=t.loss,
        gan_int_beta=t.gan_int_beta,
        gan_int_weight=t.gan_int_weight,
        ma_gp_weight=t.ma_gp_weight,
        kl_weight=t.kl_weight,
        mode_seeking_weight=t.mode_seeking_weight,
        ema_decay=t.ema_decay,
        contrastive_weight=t.contrastive_weight,
    )


def _networks(config: Config, embedding_dim: int):
    m, size = config.model, config.data.image_size
    shared = {"image_size": size, "embedding_dim": embedding_dim}
    shared["embedding_normalization"] = m.embedding_normalization
    if m.architecture == "dfgan":
        generator = FusedGenerator(
            **shared, z_dim=m.z_dim, filters=m.generator_filters, seed=config.train.seed
        )
        return generator, ResidualDiscriminator(**shared, filters=m.discriminator_filters)
    generator = Generator(
        **shared,
        z_dim=m.z_dim,
        text_projection_dim=m.text_projection_dim,
        filters=m.generator_filters,
        conditioning_augmentation=m.conditioning_augmentation,
        seed=config.train.seed,
        text_bottleneck_dim=m.text_bottleneck_dim,
        text_bottleneck_noise=m.text_bottleneck_noise,
    )
    discriminator = Discriminator(
        **shared,
        text_projection_dim=m.text_projection_dim,
        filters=m.discriminator_filters,
        spectral_norm=m.spectral_norm,
        conditioning=m.discriminator_conditioning,
        unconditional_output=m.unconditional_loss,
        patch_realism=m.patch_realism,
    )
    return generator, discriminator
