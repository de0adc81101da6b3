"""Generator: shapes at each resolution, range, float32 output, CA, the text bottleneck, config
and .keras trips."""

import keras
import numpy as np
import pytest

from t2i_keras.models.generator import Generator
from tests.gan_helpers import Z_DIM, inputs, tiny_generator


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_output_shape_and_range_at_each_resolution(size):
    generator = tiny_generator(size, filters=2)
    embeddings, noise, _ = inputs(2)
    images = np.asarray(generator([embeddings, noise]))
    assert images.shape == (2, size, size, 3)
    assert images.min() >= -1 and images.max() <= 1


def test_reed_architecture_defaults():
    generator = Generator()
    assert (generator.image_size, generator.z_dim, generator.text_projection_dim) == (64, 100, 128)
    images = generator([np.zeros((1, 512), np.float32), np.zeros((1, 100), np.float32)])
    assert images.shape == (1, 64, 64, 3)
    # 4x4x512 seed, then 256, 128, 64 filters (DCGAN with ngf = 64).
    assert [layer.filters for layer in generator.up_blocks if hasattr(layer, "filters")] == [
        256,
        128,
        64,
    ]


def test_unsupported_size_is_a_clear_error():
    with pytest.raises(ValueError, match="image_size must be one of"):
        Generator(image_size=48)


def test_output_is_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator = tiny_generator()
        embeddings, noise, _ = inputs(2)
        assert generator([embeddings, noise]).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_conditioning_augmentation_samples_in_training_and_uses_the_mean_otherwise():
    generator = tiny_generator(conditioning_augmentation=True)
    embeddings, noise, _ = inputs(2)
    a = np.asarray(generator.generate(embeddings, noise, training=True)[0])
    b = np.asarray(generator.generate(embeddings, noise, training=True)[0])
    assert not np.allclose(a, b), "CA must sample a new conditioning vector in training"
    c = np.asarray(generator([embeddings, noise], training=False))
    d = np.asarray(generator([embeddings, noise], training=False))
    np.testing.assert_array_equal(c, d)
    _, kl = generator.generate(embeddings, noise)
    assert kl.shape == (2,) and np.all(np.asarray(kl) >= 0)


def test_text_bottleneck_reads_the_caption_through_tanh_plus_the_first_noise_entries():
    generator = tiny_generator(text_bottleneck_dim=3, text_bottleneck_noise=0.7)
    embeddings, noise, _ = inputs(2)
    conditioning, _, rest = generator.condition(embeddings, noise)
    np.testing.assert_array_equal(np.asarray(rest), noise[:, 3:])  # z is what is left
    # By hand: standardize, squeeze through tanh(W e + b), add 0.7 x noise[:, :3], project.
    squeezed = np.tanh(np.asarray(generator.text_bottleneck(generator.embedding_norm(embeddings))))
    channel = squeezed + 0.7 * noise[:, :3]
    projected = np.asarray(generator.text_projection(channel))
    expected = np.where(projected > 0, projected, 0.2 * projected)
    np.testing.assert_allclose(np.asarray(conditioning), expected, rtol=1e-5, atol=1e-6)
    assert generator.text_bottleneck.units == 3


def test_text_bottleneck_noise_changes_the_image_and_is_deterministic_given_it():
    generator = tiny_generator(text_bottleneck_dim=3)
    embeddings, noise, _ = inputs(2)
    base = np.asarray(generator([embeddings, noise], training=True))
    np.testing.assert_array_equal(base, np.asarray(generator([embeddings, noise], training=True)))
    channel_moved = noise.copy()
    channel_moved[:, :3] += 1.0
    assert not np.allclose(base, np.asarray(generator([embeddings, channel_moved])))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"text_bottleneck_dim": Z_DIM}, r"text_bottleneck_dim must be in \[1, z_dim\)"),
        ({"text_bottleneck_dim": 2, "conditioning_augmentation": True}, "choose one"),
    ],
)
def test_text_bottleneck_misuse_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_generator(**kwargs)


def test_noise_and_text_both_change_the_image():
    generator = tiny_generator()
    embeddings, noise, _ = inputs(2)
    base = np.asarray(generator([embeddings, noise]))
    assert not np.allclose(base, np.asarray(generator([embeddings, noise + 1.0])))
    assert not np.allclose(base, np.asarray(generator([embeddings + 1.0, noise])))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conditioning_augmentation": True},
        {"text_bottleneck_dim": 3, "text_bottleneck_noise": 0.5},
    ],
)
def test_config_and_keras_file_round_trip(tmp_path, kwargs):
    generator = tiny_generator(**kwargs)
    embeddings, noise, _ = inputs(3)
    expected = np.asarray(generator([embeddings, noise]))
    clone = Generator.from_config(generator.get_config())
    assert clone.get_config() == generator.get_config()
    generator.save(tmp_path / "g.keras")
    restored = keras.saving.load_model(tmp_path / "g.keras")
    assert isinstance(restored, Generator) and restored.z_dim == Z_DIM
    np.testing.assert_allclose(np.asarray(restored([embeddings, noise])), expected, atol=1e-6)
