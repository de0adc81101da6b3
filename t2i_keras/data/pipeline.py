"""The training input pipeline: images with precomputed caption embeddings, as `tf.data`.

Captions are embedded once (USE is frozen), so a training step only gathers vectors. Each time an
image is visited one of its captions is sampled, as in Reed et al. 2016 (§5: "we sample one of the
ten captions"), so an epoch sees a different caption mix each time. Real datasets have a varying
number of captions per image (COCO: 5 to 7), stored padded; `caption_counts` keeps the sampling
to each image's real captions.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from t2i_keras.data.pairs import add_gan_pairs


def augment_images(images: tf.Tensor, randomness: tf.Tensor, flip: bool) -> tf.Tensor:
    """uint8 [B, H, W, 3] -> float32 in [-1, 1], mirrored where `randomness[:, 1]` is even.

    Args:
        images: uint8 [B, H, W, 3].
        randomness: int64 [B, 2] from `tf.data.Dataset.random` (column 1 drives the flips).
        flip: random horizontal flips (the captions of flowers and birds are mirror-invariant).
    """
    images = tf.cast(images, tf.float32) / 127.5 - 1.0
    if flip:
        mirrored = (randomness[:, 1] % 2 == 0)[:, None, None, None]
        images = tf.where(mirrored, images[:, :, ::-1, :], images)
    return images


def training_batch(
    images: tf.Tensor,
    embeddings: tf.Tensor,
    caption_counts: tf.Tensor,
    class_ids: tf.Tensor,
    randomness: tf.Tensor,
    flip: bool,
) -> dict[str, tf.Tensor]:
    """One training batch from B examples: samples one valid caption per image, scales, flips.

    Args:
        images: uint8 [B, H, W, 3].
        embeddings: float32 [B, C, D], each image's captions (padded beyond its count).
        caption_counts: int [B], how many of the C rows of each image are real captions (>= 1).
        class_ids: int [B].
        randomness: int64 [B, 2]; column 0 picks the caption, column 1 the flip.
        flip: random horizontal flips.

    Returns:
        The dicts `training_dataset` documents.
    """
    caption = randomness[:, 0] % tf.cast(caption_counts, tf.int64)
    return {
        "image": augment_images(images, randomness, flip),
        "embedding": tf.gather(tf.cast(embeddings, tf.float32), caption, batch_dims=1),
        "class_id": tf.cast(class_ids, tf.int32),
    }


def training_dataset(
    images: np.ndarray,
    caption_embeddings: np.ndarray,
    class_ids: np.ndarray,
    batch_size: int,
    seed: int = 0,
    flip: bool = True,
    caption_counts: np.ndarray | None = None,
    z_dim: int = 100,
    start_step: int = 0,
    gan_pairs: bool = True,
    embedding_noise: float = 0.0,
) -> tf.data.Dataset:
    """An endless, shuffled, batched dataset for `TextToImageGAN.fit`.

    Args:
        images: uint8 [N, H, W, 3].
        caption_embeddings: float32 [N, C, D], the embeddings of each image's C captions.
        class_ids: int [N]; wrong images are drawn from other classes.
        batch_size: the global batch size (batches are dropped at the end of an epoch).
        seed: seeds shuffling, caption sampling and flips (the same seed gives the same stream).
        flip: random horizontal flips.
        caption_counts: int [N], the number of real captions of each image when
            `caption_embeddings` is padded (as `load_prepared` returns it); None means all C.
        z_dim: the generator's noise size (noise is drawn here, see `t2i_keras.data.pairs`).
        start_step: skip this many batches: the stream is a function of the step, so a resumed
            run sees exactly the batches an uninterrupted one would.
        gan_pairs: add the GAN step's wrong images, GAN-INT partners and noise; without them the
            same image/caption stream serves other models (the R-precision matcher).
        embedding_noise: LAFITE's perturbation strength for the GAN's caption embeddings
            (`t2i_keras.data.pairs.perturb_embeddings`); 0 disables it.

    Returns:
        Batches of dicts: `image` float32 [B, H, W, 3] in [-1, 1]; `embedding` float32 [B, D];
        `class_id` int32 [B]; with `gan_pairs`, also `wrong_image`, `wrong_mask`,
        `mix_embedding`, `noise` (see `t2i_keras.data.pairs.add_gan_pairs`).
    """
    num_images = len(images)
    if num_images < batch_size:
        raise ValueError(
            f"The dataset has {num_images} images, fewer than one batch of {batch_size}: "
            "lower --train.batch_size or add images."
        )
    if not (len(caption_embeddings) == len(class_ids) == num_images):
        raise ValueError(
            f"images ({num_images}), caption_embeddings ({len(caption_embeddings)}) and "
            f"class_ids ({len(class_ids)}) must have the same length"
        )
    num_captions = caption_embeddings.shape[1]
    if caption_counts is None:
        caption_counts = np.full(num_images, num_captions, np.int32)
    caption_counts = np.asarray(caption_counts)
    if caption_counts.shape != (num_images,):
        raise ValueError(
            f"caption_counts must have shape ({num_images},), got {caption_counts.shape}"
        )
    if not (1 <= caption_counts.min() and caption_counts.max() <= num_captions):
        raise ValueError(
            f"caption_counts must be between 1 and {num_captions} (the padded caption axis), "
            f"got values from {caption_counts.min()} to {caption_counts.max()}"
        )
    images_t = tf.constant(images)
    embeddings_t = tf.constant(caption_embeddings, tf.float32)
    counts_t = tf.constant(caption_counts, tf.int32)
    class_t = tf.constant(class_ids, tf.int32)

    def to_batch(index, randomness):
        # Vectorized over the batch: one gather per tensor instead of one map call per image.
        batch = training_batch(
            tf.gather(images_t, index),
            tf.gather(embeddings_t, index),
            tf.gather(counts_t, index),
            tf.gather(class_t, index),
            randomness,
            flip,
        )
        if not gan_pairs:
            return batch
        return add_gan_pairs(batch, randomness[0], z_dim, embedding_noise)

    indices = (
        tf.data.Dataset.range(num_images)
        .shuffle(num_images, seed=seed, reshuffle_each_iteration=True)
        .repeat()
    )
    randomness = tf.data.Dataset.random(seed=seed + 1).batch(2)
    return (
        tf.data.Dataset.zip(indices, randomness)
        .batch(batch_size, drop_remainder=True)
        .skip(start_step)  # before the map: skipping costs index shuffles, not image gathers
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
