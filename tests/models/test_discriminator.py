"""Discriminator: one float32 logit per example, each conditioning option, round trips."""

import keras
import numpy as np
import pytest

from t2i_keras.models.discriminator import Discriminator
from tests.gan_helpers import inputs, tiny_discriminator


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_one_logit_per_example_at_each_resolution(size):
    embeddings, _, images = inputs(3, image_size=size)
    logits = tiny_discriminator(size, filters=2)([images, embeddings])
    assert logits.shape == (3,) and logits.dtype == "float32"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"spectral_norm": True},
        {"conditioning": "projection"},
        {"conditioning": "projection", "spectral_norm": True},
    ],
)
def test_text_changes_the_logit_for_every_option(options):
    embeddings, _, images = inputs(2)
    discriminator = tiny_discriminator(**options)
    a = np.asarray(discriminator([images, embeddings]))
    b = np.asarray(discriminator([images, embeddings + 1.0]))
    assert not np.allclose(a, b), "the discriminator must look at the caption"


def test_spectral_norm_replaces_batch_norm():
    with_sn = tiny_discriminator(spectral_norm=True)
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in with_sn.down_blocks
    )
    assert any(
        isinstance(layer, keras.layers.SpectralNormalization) for layer in with_sn.down_blocks
    )


def test_reed_concatenation_happens_at_4x4():
    discriminator = Discriminator()
    embeddings = np.zeros((1, 512), np.float32)
    x = np.zeros((1, 64, 64, 3), np.float32)
    for layer in discriminator.down_blocks:
        x = layer(x)
    assert x.shape == (1, 4, 4, 512)
    assert discriminator([np.zeros((1, 64, 64, 3), np.float32), embeddings]).shape == (1,)


def test_bad_conditioning_is_a_clear_error():
    with pytest.raises(ValueError, match="conditioning must be one of"):
        Discriminator(conditioning="attention")


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("conditioning", ["concat", "projection"])
def test_patch_realism_adds_one_caption_blind_logit_per_cell_of_the_8x8_map(size, conditioning):
    embeddings, _, images = inputs(2, image_size=size)
    discriminator = tiny_discriminator(size, conditioning=conditioning, patch_realism=True)
    logits = np.asarray(discriminator([images, embeddings]))
    other_text = np.asarray(discriminator([images, embeddings + 1.0]))
    assert logits.shape == (2, 1 + 64) and logits.dtype == "float32"
    assert not np.allclose(logits[:, 0], other_text[:, 0]), "column 0 matches the caption"
    np.testing.assert_array_equal(logits[:, 1:], other_text[:, 1:])


def test_a_patch_logit_sees_its_own_part_of_the_image_only():
    embeddings, _, images = inputs(1, image_size=32)
    discriminator = tiny_discriminator(32, patch_realism=True)
    touched = images.copy()
    touched[:, :4, :4] = -touched[:, :4, :4]  # the top-left corner only
    before = np.asarray(discriminator([images, embeddings]))[0, 1:].reshape(8, 8)
    after = np.asarray(discriminator([touched, embeddings]))[0, 1:].reshape(8, 8)
    assert not np.isclose(before[0, 0], after[0, 0])
    np.testing.assert_array_equal(before[4:, 4:], after[4:, 4:])


def test_patch_realism_and_the_unconditional_logit_are_one_or_the_other():
    with pytest.raises(ValueError, match="choose one"):
        tiny_discriminator(conditioning="projection", unconditional_output=True, patch_realism=True)


@pytest.mark.parametrize("options", [{}, {"patch_realism": True}, {"spectral_norm": True}])
def test_contrastive_codes_come_with_calls_logits_one_per_image_and_one_per_caption(options):
    embeddings, _, images = inputs(3)
    discriminator = tiny_discriminator(conditioning="projection", **options)
    logits, image_codes, caption_codes = discriminator.logits_and_codes([images, embeddings])
    np.testing.assert_allclose(logits, discriminator([images, embeddings]), atol=1e-6)
    for codes in (image_codes, caption_codes):
        assert codes.shape == (3, 8) and codes.dtype == "float32"  # the last block's width
        np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, rtol=1e-5)
    _, other_image_codes, same_caption_codes = discriminator.logits_and_codes(
        [images, embeddings + 1.0]
    )
    np.testing.assert_allclose(other_image_codes, image_codes, atol=1e-6)  # the image's own
    assert not np.allclose(same_caption_codes, caption_codes)  # the caption's


def test_contrastive_codes_are_directions_so_the_scale_of_w_leaves_them_unchanged():
    embeddings, _, images = inputs(3)
    discriminator = tiny_discriminator(conditioning="projection")
    logits, *codes = discriminator.logits_and_codes([images, embeddings])
    kernel = discriminator.text_embedding.kernel
    kernel.assign(10.0 * kernel)
    scaled_logits, *scaled_codes = discriminator.logits_and_codes([images, embeddings])
    assert not np.allclose(logits, scaled_logits)
    for code, scaled in zip(codes, scaled_codes):
        np.testing.assert_allclose(code, scaled, atol=1e-5)


def test_contrastive_codes_need_the_projection_discriminator():
    embeddings, _, images = inputs(2)
    with pytest.raises(ValueError, match="conditioning='projection'"):
        tiny_discriminator().logits_and_codes([images, embeddings])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"spectral_norm": True, "conditioning": "projection"},
        {"spectral_norm": True, "patch_realism": True},
    ],
)
def test_config_and_keras_file_round_trip(tmp_path, options):
    discriminator = tiny_discriminator(**options)
    embeddings, _, images = inputs(3)
    expected = np.asarray(discriminator([images, embeddings]))
    assert (
        Discriminator.from_config(discriminator.get_config()).get_config()
        == discriminator.get_config()
    )
    discriminator.save(tmp_path / "d.keras")
    restored = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(np.asarray(restored([images, embeddings])), expected, atol=1e-6)
