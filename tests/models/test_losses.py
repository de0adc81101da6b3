"""Each loss against values computed by hand on fixed logits (TF-GAN's style of loss test)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.models import losses

REAL = [-5.0, 1.4, 12.5, 2.7]
WRONG = [0.3, -2.0, 4.0, -0.5]
FAKE = [1.0, -1.0, 0.0, 3.0]


def softplus(x):
    return math.log1p(math.exp(x)) if x < 30 else x


def test_bce_discriminator_loss_matches_reeds_weighting():
    got = losses.bce_discriminator_loss(tf.constant(REAL), tf.constant(WRONG), tf.constant(FAKE))
    # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(x)) = softplus(x).
    expected = [
        softplus(-r) + 0.5 * (softplus(w) + softplus(f)) for r, w, f in zip(REAL, WRONG, FAKE)
    ]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    # Spot-check one value written out in full: r=-5, w=0.3, f=1.
    assert got.numpy()[0] == pytest.approx(5.006715348 + 0.5 * (0.854355244 + 1.313261687), 1e-6)


def test_bce_wrong_mask_drops_the_wrong_term():
    mask = tf.constant([1.0, 0.0, 1.0, 0.0])
    got = losses.bce_discriminator_loss(
        tf.constant(REAL), tf.constant(WRONG), tf.constant(FAKE), mask
    ).numpy()
    expected = [
        softplus(-r) + 0.5 * (m * softplus(w) + softplus(f))
        for r, w, f, m in zip(REAL, WRONG, FAKE, [1, 0, 1, 0])
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_bce_generator_loss_is_non_saturating():
    got = losses.bce_generator_loss(tf.constant(REAL)).numpy()
    np.testing.assert_allclose(got, [softplus(-x) for x in REAL], rtol=1e-6)
    assert got[0] == pytest.approx(5.006715348, 1e-6)  # -log sigmoid(-5): large, not saturated


def test_hinge_losses():
    got = losses.hinge_discriminator_loss(
        tf.constant(REAL), tf.constant(WRONG), tf.constant(FAKE)
    ).numpy()
    expected = [
        max(0, 1 - r) + 0.5 * (max(0, 1 + w) + max(0, 1 + f)) for r, w, f in zip(REAL, WRONG, FAKE)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(
        got,
        [6.0 + 0.5 * (1.3 + 2.0), 0.0 + 0.5 * (0 + 0), 0.5 * (5 + 1), 0.5 * (0.5 + 4)],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        losses.hinge_generator_loss(tf.constant(REAL)).numpy(), [5.0, -1.4, -12.5, -2.7]
    )


def test_losses_are_float32_for_bfloat16_logits():
    logits = tf.constant(REAL, tf.bfloat16)
    assert losses.bce_generator_loss(logits).dtype == tf.float32
    assert losses.hinge_discriminator_loss(logits, logits, logits).dtype == tf.float32


def test_matching_aware_gradient_penalty_on_a_linear_critic():
    """For D(x, e) = <a, x> + <b, e>, the gradient is (a, b) everywhere: the penalty is
    k·‖(a, b)‖^p exactly."""
    a = np.full((2, 2, 1), 0.5, np.float32)  # image gradient, norm 1
    b = np.array([0.0, 2.0], np.float32)  # text gradient, norm 2

    def critic(inputs):
        images, embeddings = inputs[0], inputs[1]
        return tf.reduce_sum(images * a, axis=[1, 2, 3]) + tf.reduce_sum(embeddings * b, axis=1)

    critic_fn = lambda inputs, training=True: critic(inputs)  # noqa: E731
    images = tf.random.normal((3, 2, 2, 1))
    embeddings = tf.random.normal((3, 2))
    logits, got = losses.matching_aware_gradient_penalty(
        critic_fn, images, embeddings, weight=2.0, power=6
    )
    np.testing.assert_allclose(got.numpy(), [2.0 * math.sqrt(1 + 4) ** 6] * 3, rtol=1e-5)
    np.testing.assert_allclose(logits.numpy(), critic([images, embeddings]).numpy(), rtol=1e-6)


def test_conditioning_augmentation_kl():
    zero = losses.conditioning_augmentation_kl(tf.zeros((2, 3)), tf.zeros((2, 3))).numpy()
    np.testing.assert_allclose(zero, [0.0, 0.0], atol=1e-7)
    mean = tf.constant([[1.0, 0.0]])
    log_sigma = tf.constant([[0.0, math.log(2.0)]])
    # ½[(1 + 1 − 1 − 0) + (4 + 0 − 1 − 2 ln 2)]
    expected = 0.5 * (1.0 + 3.0 - 2 * math.log(2.0))
    got = losses.conditioning_augmentation_kl(mean, log_sigma).numpy()
    np.testing.assert_allclose(got, [expected], rtol=1e-6)
    random = losses.conditioning_augmentation_kl(
        tf.random.normal((50, 4)), tf.random.normal((50, 4))
    )
    assert np.all(random.numpy() >= 0)


def test_mode_seeking_loss_is_the_inverse_distance_ratio():
    images = tf.zeros([2, 2, 2, 3])
    # Example 0: every pixel 0.5 apart, noise 2 apart -> 1 / (0.5 / 2) = 4. Example 1: the same
    # image twice -> 1 / ε.
    twins = tf.stack([tf.fill([2, 2, 3], 0.5), tf.zeros([2, 2, 3])])
    noise, twin_noise = tf.zeros([2, 4]), tf.fill([2, 4], 2.0)
    loss = losses.mode_seeking_loss(images, twins, noise, twin_noise).numpy()
    np.testing.assert_allclose(loss, [1 / (0.25 + 1e-5), 1e5], rtol=1e-5)


def test_caption_contrastive_loss_is_the_softmax_cross_entropy_over_the_captions():
    """Two images (a replica's) against four captions (the global batch's), their own captions
    at columns 2 and 3, by hand: −log(exp(s_ii/τ) / Σ_j exp(s_ij/τ)) with s the cosines. Caption
    0 repeats image 1's own caption, so it is no negative of image 1's."""
    rng = np.random.default_rng(0)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    image_codes = unit(rng.normal(size=(2, 5))).astype(np.float32)
    caption_codes = unit(rng.normal(size=(4, 5))).astype(np.float32)
    caption_embeddings = rng.normal(size=(4, 6)).astype(np.float32)
    caption_embeddings[0] = 3.0 * caption_embeddings[3]  # the same caption, as a direction
    loss = losses.caption_contrastive_loss(
        image_codes,
        caption_codes,
        np.array([2, 3]),
        caption_embeddings[2:],
        caption_embeddings,
        0.5,
    ).numpy()
    s = image_codes @ caption_codes.T / 0.5
    expected = [
        -s[0, 2] + math.log(sum(math.exp(v) for v in s[0])),
        -s[1, 3] + math.log(math.exp(s[1, 1]) + math.exp(s[1, 2]) + math.exp(s[1, 3])),
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    distinct = np.eye(3, 6, dtype=np.float32)
    codes = np.eye(3, dtype=np.float32)
    near_zero = losses.caption_contrastive_loss(codes, codes, np.arange(3), distinct, distinct, 0.1)
    assert near_zero.numpy().max() < 1e-3  # each image points exactly at its own caption
