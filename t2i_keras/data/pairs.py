"""The random parts of a GAN-INT-CLS step, drawn in the input pipeline on the global batch.

Reed et al. 2016 train the matching-aware discriminator on (wrong image, right text) pairs
(GAN-CLS, §4.2) and the generator on interpolated caption embeddings (GAN-INT, §4.3). Drawing the
wrong images, interpolation partners and noise here, per example and before `tf.distribute`
splits the batch across replicas, makes a step's result independent of the number of replicas:
one device at batch 2B and two replicas at B each see exactly the same pairs and noise (the
distribution tests check it). Inside a replica's `train_step` the wrong image could only come from
that replica's share of the batch, and each replica would need its own noise stream.
"""

from __future__ import annotations

import tensorflow as tf

NOISE_DRAWS = 2  # per example: the fake (for both updates, Reed Alg. 1), the GAN-INT fake


def sample_wrong_indices(class_ids: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """For each example, a random other example of a *different* class (GAN-CLS's wrong image).

    Shifting the batch by one (a common shortcut) can pair an image with its own class, which
    teaches the discriminator that a matching pair is fake. Rows whose class fills the whole batch
    have no candidate: their mask is 0 and the loss drops their wrong term.

    Args:
        class_ids: int [B].
        seed: int [2], a stateless-random seed.

    Returns:
        (indices int32 [B], mask float32 [B]).
    """
    class_ids = tf.convert_to_tensor(class_ids)
    batch = tf.shape(class_ids)[0]
    different = tf.not_equal(class_ids[:, None], class_ids[None, :])
    scores = tf.where(different, tf.random.stateless_uniform([batch, batch], seed), -1.0)
    indices = tf.argmax(scores, axis=1, output_type=tf.int32)
    return indices, tf.cast(tf.reduce_any(different, axis=1), tf.float32)


def interpolation_partners(batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A random permutation of the batch: each example's GAN-INT partner (t2 in β·t1 + (1−β)·t2)."""
    return tf.argsort(tf.random.stateless_uniform([batch], seed))


def perturb_embeddings(embeddings: tf.Tensor, strength: float, seed: tf.Tensor) -> tf.Tensor:
    """LAFITE's embedding perturbation (Zhou et al., CVPR 2022, §3.2, eq. 3), per example.

    e' = (e + ξ·‖e‖·ε/‖ε‖) / ‖e + ξ·‖e‖·ε/‖ε‖‖ · ‖e‖ with ε ~ N(0, I): a random direction at a
    relative distance ξ, rescaled to the original norm. Trained on such neighbours, the networks
    learn that captions the encoder places close together mean the same image, which is what a
    paraphrase or a translation of a training caption is to USE.
    """
    embeddings = tf.cast(embeddings, tf.float32)
    norm = tf.norm(embeddings, axis=-1, keepdims=True)
    direction = tf.random.stateless_normal(tf.shape(embeddings), seed)
    direction /= tf.norm(direction, axis=-1, keepdims=True)
    moved = embeddings + strength * norm * direction
    return moved * norm / tf.maximum(tf.norm(moved, axis=-1, keepdims=True), 1e-12)


def add_gan_pairs(batch: dict, seed: tf.Tensor, z_dim: int, embedding_noise: float = 0.0) -> dict:
    """Adds what `TextToImageGAN.train_step` draws at random, for a batch of the training pipeline.

    Args:
        batch: `image` float32 [B, H, W, 3], `embedding` float32 [B, D], `class_id` int32 [B].
        seed: int [2], a stateless-random seed for this batch.
        z_dim: the generator's noise size.
        embedding_noise: ξ of `perturb_embeddings`, applied to the batch's caption embeddings
            (and so to their GAN-INT partners); 0 leaves them as they are.

    Returns:
        The batch plus `wrong_image` [B, H, W, 3] (an image of another class), `wrong_mask` float32
        [B] (0 where the batch has no other class), `mix_embedding` [B, D] (the GAN-INT partner)
        `noise` float32 [B, 2, z_dim] (N(0, I)) and `twin_noise` float32 [B, z_dim] (N(0, I): the
        fake's twin under the same caption, for the mode-seeking term).
    """
    wrong_seed, mix_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    size = tf.shape(batch["class_id"])[0]
    if embedding_noise:
        # Folded in rather than split four ways, so the other draws stay what they were.
        perturb_seed = tf.random.experimental.stateless_fold_in(seed, NOISE_DRAWS)
        embedding = perturb_embeddings(batch["embedding"], embedding_noise, perturb_seed)
        batch = {**batch, "embedding": embedding}
    wrong, mask = sample_wrong_indices(batch["class_id"], wrong_seed)
    return {
        **batch,
        "wrong_image": tf.gather(batch["image"], wrong),
        "wrong_mask": mask,
        "mix_embedding": tf.gather(batch["embedding"], interpolation_partners(size, mix_seed)),
        "noise": tf.random.stateless_normal([size, NOISE_DRAWS, z_dim], noise_seed),
        # Folded in too: the streams above are the same whether or not a run uses the twin.
        "twin_noise": tf.random.stateless_normal(
            [size, z_dim], tf.random.experimental.stateless_fold_in(seed, NOISE_DRAWS + 1)
        ),
    }
