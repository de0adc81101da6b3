"""Layer factories and shared settings of the networks: the NHWC layout whatever Keras' global
image_data_format says."""

import numpy as np
import pytest

from t2i_keras.models.fused_generator import FusedGenerator
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.models.residual_discriminator import ResidualDiscriminator
from tests.gan_helpers import EMBEDDING_DIM, Z_DIM, inputs, tiny_gan


def dfgan_gan(image_size=16):
    return TextToImageGAN(
        FusedGenerator(
            image_size=image_size, embedding_dim=EMBEDDING_DIM, z_dim=Z_DIM, filters=2, seed=0
        ),
        ResidualDiscriminator(image_size=image_size, embedding_dim=EMBEDDING_DIM, filters=2),
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: tiny_gan(generator_kwargs={"conditioning_augmentation": True}),
        lambda: tiny_gan(
            discriminator_kwargs={"spectral_norm": True, "conditioning": "projection"}
        ),
        dfgan_gan,
    ],
    ids=["reed", "projection", "dfgan"],
)
def test_the_networks_are_nhwc_under_a_channels_first_keras_default(build, channels_first_default):
    # A keras.json may say channels_first (old advice for GPUs); the input pipeline, the 4x4
    # seed's reshape and the text concatenation are NHWC regardless, so every layer must be too.
    gan = build()
    assert channels_first_default(gan) == {"channels_last"}
    embeddings, noise, images = inputs(2)
    assert gan.generate(embeddings, noise).shape == (2, 16, 16, 3)
    logits = np.asarray(gan.discriminator([images, embeddings]))
    assert logits.shape == (2,) and np.isfinite(logits).all()
