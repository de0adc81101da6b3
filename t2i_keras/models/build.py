"""The networks a config describes: the one place a config becomes a `TextToImageGAN`."""

from __future__ import annotations

from t2i_keras.config import Config
from t2i_keras.models.discriminator import Discriminator
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.models.generator import Generator


def build_gan(config: Config, embedding_dim: int) -> TextToImageGAN:
    """The generator, discriminator and GAN wrapper described by `config` (not yet compiled)."""
    m, t = config.model, config.train
    generator = Generator(
        image_size=config.data.image_size,
        embedding_dim=embedding_dim,
        z_dim=m.z_dim,
        text_projection_dim=m.text_projection_dim,
        filters=m.generator_filters,
        conditioning_augmentation=m.conditioning_augmentation,
        seed=t.seed,
    )
    discriminator = Discriminator(
        image_size=config.data.image_size,
        embedding_dim=embedding_dim,
        text_projection_dim=m.text_projection_dim,
        filters=m.discriminator_filters,
        spectral_norm=m.spectral_norm,
        conditioning=m.discriminator_conditioning,
    )
    return TextToImageGAN(
        generator,
        discriminator,
        loss=t.loss,
        gan_int_beta=t.gan_int_beta,
        gan_int_weight=t.gan_int_weight,
        ma_gp_weight=t.ma_gp_weight,
        kl_weight=t.kl_weight,
        ema_decay=t.ema_decay,
    )
