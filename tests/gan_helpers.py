"""Tiny networks and data for GAN tests: small enough for a CPU step in well under a second."""

import keras
import numpy as np
import tensorflow as tf

from t2i_keras.data.pairs import add_gan_pairs
from t2i_keras.models.discriminator import Discriminator
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.models.generator import Generator

EMBEDDING_DIM = 16
Z_DIM = 8


def tiny_generator(image_size=16, **kwargs):
    kwargs = {
        "embedding_dim": EMBEDDING_DIM,
        "z_dim": Z_DIM,
        "text_projection_dim": 8,
        "filters": 4,
        "seed": 0,
        **kwargs,
    }
    return Generator(image_size=image_size, **kwargs)


def tiny_discriminator(image_size=16, **kwargs):
    kwargs = {"embedding_dim": EMBEDDING_DIM, "text_projection_dim": 8, "filters": 4, **kwargs}
    return Discriminator(image_size=image_size, **kwargs)


def tiny_gan(image_size=16, generator_kwargs=None, discriminator_kwargs=None, **kwargs):
    kwargs = {"ema_decay": 0.5, **kwargs}
    return TextToImageGAN(
        tiny_generator(image_size, **(generator_kwargs or {})),
        tiny_discriminator(image_size, **(discriminator_kwargs or {})),
        **kwargs,
    )


def compile_tiny(gan, **kwargs):
    gan.compile(
        d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        **kwargs,
    )
    return gan


def tiny_batches(batch=8, image_size=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    n = batch * 2
    data = {
        "image": rng.uniform(-1, 1, (n, image_size, image_size, 3)).astype(np.float32),
        "embedding": rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32),
        "class_id": (np.arange(n) % classes).astype(np.int32),
    }
    batches = tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True).repeat()
    # As the training pipeline does: wrong images, GAN-INT partners and noise per batch, seeded.
    return batches.enumerate().map(
        lambda i, b: add_gan_pairs(b, tf.stack([tf.constant(seed, tf.int64), i]), Z_DIM)
    )


def inputs(batch=2, image_size=16, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32),
        rng.normal(size=(batch, Z_DIM)).astype(np.float32),
        rng.uniform(-1, 1, (batch, image_size, image_size, 3)).astype(np.float32),
    )


def tiny_config():
    """The quickstart preset shrunk to a few seconds of training (tiny networks, 2 x 2 steps)."""
    from t2i_keras import config as t2i_config

    config = t2i_config.get_preset("quickstart")
    config.data.image_size = 32
    config.data.num_train = 64
    config.data.num_test = 16
    config.model.generator_filters = 4
    config.model.discriminator_filters = 4
    config.train.batch_size = 16
    config.train.epochs = 2
    config.train.steps_per_epoch = 2
    config.train.precision = "float32"  # "auto" would depend on the test machine's CPU
    config.train.eval_every = 0  # the preset measures FID every 5 epochs; tests that want it set it
    config.sample_captions = ("a red flower", "a blue flower")
    config.samples_per_caption = 2
    return config
