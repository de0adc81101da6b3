"""GAN losses for text-conditioned image synthesis, per example.

Every function returns one value per example ([B]) rather than a batch mean, so the caller can
average over the *global* batch under `tf.distribute` (`tf.nn.compute_average_loss`); a replica
mean followed by the all-reduce's sum would multiply gradients by the number of replicas.
"""

from __future__ import annotations

import tensorflow as tf

from t2i_keras.models.kinds import LOSS_KINDS


def _bce_real(logits: tf.Tensor) -> tf.Tensor:
    """-log sigmoid(x), the cross-entropy of a logit against the label 'real'."""
    return tf.nn.softplus(-logits)


def _bce_fake(logits: tf.Tensor) -> tf.Tensor:
    """-log(1 - sigmoid(x)), the cross-entropy of a logit against the label 'fake'."""
    return tf.nn.softplus(logits)


def _matching_aware_combination(real, wrong, fake, wrong_mask):
    """Reed et al. 2016, Algorithm 1: L_D = log s_r + (log(1 - s_w) + log(1 - s_f)) / 2.

    `wrong_mask` (1/0 per example) drops the wrong-image term of rows that had no image of another
    class in the batch to pair with.
    """
    if wrong_mask is None:
        wrong_mask = tf.ones_like(wrong)
    return real + 0.5 * (tf.cast(wrong_mask, wrong.dtype) * wrong + fake)


def bce_discriminator_loss(
    real_logits: tf.Tensor,
    wrong_logits: tf.Tensor,
    fake_logits: tf.Tensor,
    wrong_mask: tf.Tensor | None = None,
) -> tf.Tensor:
    """Matching-aware discriminator cross-entropy (GAN-CLS; Reed et al. 2016, §4.2, Alg. 1).

    (real image, right text) is labelled real; (wrong image, right text) and (fake image, right
    text) are labelled fake, weighted real + ½(wrong + fake).
    """
    real_logits, wrong_logits, fake_logits = (
        tf.cast(x, tf.float32) for x in (real_logits, wrong_logits, fake_logits)
    )
    return _matching_aware_combination(
        _bce_real(real_logits), _bce_fake(wrong_logits), _bce_fake(fake_logits), wrong_mask
    )


def bce_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss -log D(G(z, t), t) (Goodfellow et al. 2014, §3; Reed §4)."""
    return _bce_real(tf.cast(fake_logits, tf.float32))


def hinge_discriminator_loss(
    real_logits: tf.Tensor,
    wrong_logits: tf.Tensor,
    fake_logits: tf.Tensor,
    wrong_mask: tf.Tensor | None = None,
) -> tf.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; Miyato et al. 2018, eq. 16), matching-aware.

    max(0, 1 - D(real)) + ½(max(0, 1 + D(wrong)) + max(0, 1 + D(fake))), the same weighting as
    Reed's cross-entropy so the two variants differ only in the per-term loss.
    """
    real_logits, wrong_logits, fake_logits = (
        tf.cast(x, tf.float32) for x in (real_logits, wrong_logits, fake_logits)
    )
    return _matching_aware_combination(
        tf.nn.relu(1.0 - real_logits),
        tf.nn.relu(1.0 + wrong_logits),
        tf.nn.relu(1.0 + fake_logits),
        wrong_mask,
    )


def hinge_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Hinge generator loss -D(G(z, t), t) (Lim & Ye 2017; Miyato et al. 2018)."""
    return -tf.cast(fake_logits, tf.float32)


# One pair of functions per kind in `kinds.LOSS_KINDS`, named <kind>_{discriminator,generator}_loss.
DISCRIMINATOR_LOSSES = {kind: globals()[f"{kind}_discriminator_loss"] for kind in LOSS_KINDS}
GENERATOR_LOSSES = {kind: globals()[f"{kind}_generator_loss"] for kind in LOSS_KINDS}


def matching_aware_gradient_penalty(
    discriminator, images: tf.Tensor, embeddings: tf.Tensor, weight: float = 2.0, power: float = 6.0
) -> tf.Tensor:
    """DF-GAN's matching-aware gradient penalty on real, matching pairs, per example.

    Tao et al. 2022, §3.3, eq. 4: k·(‖∇_x D(x, e)‖ + ‖∇_e D(x, e)‖)^p with k = 2, p = 6. As in the
    authors' released code, the norm is taken over the concatenated gradient [∇_x, ∇_e], with e
    the caption embedding as the discriminator reads it (after its standardization). It
    smooths the loss surface around real data *and* matching text, so the generator is pulled
    towards images that match their caption.

    Returns (logits [B], penalty [B]): the discriminator's logits on the real pairs come from the
    same forward pass, so the train step needs no second one (as in DF-GAN's code).
    """
    images = tf.cast(images, tf.float32)
    embeddings = tf.cast(embeddings, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([images, embeddings])
        logits = tf.cast(discriminator([images, embeddings], training=True), tf.float32)
        # With an unconditional column ([B, 2]) the penalty is on the matching-aware logit.
        total = tf.reduce_sum(logits if logits.shape.rank == 1 else logits[:, 0])
    image_grad, text_grad = tape.gradient(total, [images, embeddings])
    # The gradient with respect to the standardized embedding the network reads, not the raw one:
    # standardization multiplies raw USE embeddings by ~50 (their spread is ~0.02 per dimension),
    # so the raw gradient would be ~50x larger and its 6th power would swamp the loss.
    norm = getattr(discriminator, "embedding_norm", None)
    if norm is not None and norm.built:
        text_grad = text_grad / tf.cast(norm.inverse_std, tf.float32)
    squared = tf.reduce_sum(tf.square(image_grad), axis=[1, 2, 3]) + tf.reduce_sum(
        tf.square(text_grad), axis=1
    )
    return logits, weight * tf.pow(tf.sqrt(squared + 1e-12), power)


def mode_seeking_loss(
    images: tf.Tensor, twin_images: tf.Tensor, noise: tf.Tensor, twin_noise: tf.Tensor
) -> tf.Tensor:
    """MSGAN's mode-seeking regularizer per example (Mao et al., CVPR 2019, §3.2, eq. 3-4).

    1 / (d_I(G(c, z1), G(c, z2)) / d_z(z1, z2) + ε), mean absolute distances, for two noise
    vectors under one caption. A conditional generator given an informative caption learns to
    ignore its noise and draws the caption's mean image; this term grows as the two images grow
    alike, so the generator must turn different noise into different flowers.
    """
    image_gap = tf.reduce_mean(tf.abs(tf.cast(images - twin_images, tf.float32)), axis=[1, 2, 3])
    noise_gap = tf.reduce_mean(tf.abs(tf.cast(noise - twin_noise, tf.float32)), axis=-1)
    return 1.0 / (image_gap / noise_gap + 1e-5)


def caption_contrastive_loss(
    image_codes: tf.Tensor,
    caption_codes: tf.Tensor,
    own_caption: tf.Tensor,
    image_embeddings: tf.Tensor,
    caption_embeddings: tf.Tensor,
    temperature: float = 0.1,
) -> tf.Tensor:
    """Image-to-caption InfoNCE per image (XMC-GAN, Zhang et al., CVPR 2021, eq. 5).

    Image i's scores are its cosines with every caption ([b, D] unit image codes against [N, D]
    unit caption codes), a softmax over the N captions at XMC-GAN's temperature 0.1 with
    caption `own_caption[i]` as the answer. A caption whose embedding equals image i's own one
    (templates repeat: "this is a white flower") is not a negative and is left out of the
    softmax. `image_embeddings` are the images' own caption embeddings, `caption_embeddings`
    those of the N captions.
    """
    scores = tf.matmul(image_codes, caption_codes, transpose_b=True) / temperature
    own = tf.one_hot(own_caption, tf.shape(scores)[1], on_value=True, off_value=False)
    unit = lambda e: tf.math.l2_normalize(tf.cast(e, tf.float32), axis=-1)  # noqa: E731
    same = tf.matmul(unit(image_embeddings), unit(caption_embeddings), transpose_b=True)
    negatives_or_own = own | (same < 1.0 - 1e-6)
    masked = tf.where(negatives_or_own, scores, tf.fill(tf.shape(scores), -1e9))
    return tf.reduce_logsumexp(masked, axis=-1) - tf.gather(scores, own_caption, batch_dims=1)


def conditioning_augmentation_kl(mean: tf.Tensor, log_sigma: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, sigma²) ‖ N(0, I)) per example (StackGAN, Zhang et al. 2017, §3.1, eq. 3).

    ½·Σ(σ² + μ² − 1 − 2·log σ): zero exactly at μ = 0, log σ = 0, positive elsewhere.
    """
    mean = tf.cast(mean, tf.float32)
    log_sigma = tf.cast(log_sigma, tf.float32)
    return 0.5 * tf.reduce_sum(
        tf.exp(2.0 * log_sigma) + tf.square(mean) - 1.0 - 2.0 * log_sigma, axis=-1
    )
