"""FusedGenerator and ResidualDiscriminator: shapes, text response, no batch coupling, saving."""

import json

import keras
import numpy as np
import pytest

from t2i_keras.models.fused_generator import FusedGenerator
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.models.residual_discriminator import ResidualDiscriminator
from tests.gan_helpers import EMBEDDING_DIM, Z_DIM, compile_tiny, inputs, tiny_batches


def tiny_fused(image_size=16, **kwargs):
    kwargs = {"embedding_dim": EMBEDDING_DIM, "z_dim": Z_DIM, "filters": 2, "seed": 0, **kwargs}
    return FusedGenerator(image_size=image_size, **kwargs)


def tiny_residual(image_size=16, **kwargs):
    return ResidualDiscriminator(
        image_size=image_size, embedding_dim=EMBEDDING_DIM, filters=2, **kwargs
    )


def _trained_like(generator):
    """DF-GAN's affines start as identities; give every weight a random value so that the text
    path is live, as it is after training."""
    embeddings, noise, _ = inputs(1, generator.image_size)
    generator([embeddings, noise])  # builds every weight
    rng = np.random.default_rng(1)
    for weight in generator.trainable_weights:
        weight.assign(rng.normal(0, 0.3, weight.shape).astype(np.float32))
    return generator


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_range(size):
    generator, discriminator = tiny_fused(size), tiny_residual(size)
    embeddings, noise, _ = inputs(2, size)
    images = np.asarray(generator([embeddings, noise]))
    assert images.shape == (2, size, size, 3) and images.min() >= -1 and images.max() <= 1
    assert discriminator([images, embeddings]).shape == (2,)


def test_changing_only_the_sentence_changes_the_image():
    generator = _trained_like(tiny_fused())
    embeddings, noise, _ = inputs(2)
    base = np.asarray(generator([embeddings, noise]))
    other = np.asarray(generator([embeddings[::-1], noise]))
    assert np.abs(base - other).mean() > 1e-3
    np.testing.assert_array_equal(base, np.asarray(generator([embeddings, noise])))


def test_the_text_reaches_every_block():
    """Deep fusion: every up-sampling block's affines read the sentence, not only the seed."""
    generator = _trained_like(tiny_fused())
    embeddings, noise, _ = inputs(2)
    for block in generator.up_blocks:
        condition = generator.condition(embeddings, noise)
        moved = generator.condition(embeddings + 1.0, noise)
        x = np.zeros((2, 4, 4, block.in_channels), np.float32) + 0.5
        assert not np.allclose(np.asarray(block([x, condition])), np.asarray(block([x, moved])))


def test_an_image_does_not_depend_on_the_rest_of_the_batch():
    generator = _trained_like(tiny_fused())
    embeddings, noise, _ = inputs(4)
    together = np.asarray(generator([embeddings, noise], training=True))
    alone = np.asarray(generator([embeddings[:1], noise[:1]], training=True))
    np.testing.assert_allclose(together[:1], alone, atol=1e-5)


@pytest.mark.parametrize("make", [tiny_fused, tiny_residual], ids=["generator", "discriminator"])
def test_config_json_round_trip(make):
    network = make(embedding_normalization="whiten")
    config = network.get_config()
    clone = type(network).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    assert clone.embedding_normalization == "whiten"


def test_gan_of_the_new_architecture_trains_saves_and_loads(tmp_path):
    gan = compile_tiny(
        TextToImageGAN(tiny_fused(), tiny_residual(), loss="hinge", ma_gp_weight=2.0, ema_decay=0.5)
    )
    assert type(gan.ema_generator) is FusedGenerator
    history = gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["gp"][-1])
    embeddings, noise, _ = inputs(3)
    expected = np.asarray(gan([embeddings, noise]))
    gan.save(tmp_path / "gan.keras")
    restored = keras.saving.load_model(tmp_path / "gan.keras")
    assert type(restored.generator) is FusedGenerator
    assert type(restored.discriminator) is ResidualDiscriminator
    np.testing.assert_allclose(np.asarray(restored([embeddings, noise])), expected, atol=1e-6)
