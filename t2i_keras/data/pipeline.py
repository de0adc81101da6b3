"""The training input pipeline: images with precomputed caption embeddings, as `tf.data`.

Captions are embedded once (USE is frozen), so a training step only gathers vectors. Each time an
image is visited one of its captions is sampled, as in Reed et al. 2016 (§5: "we sample one of the
ten captions"), so an epoch sees a different caption mix each time.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def training_dataset(
    images: np.ndarray,
    caption_embeddings: np.ndarray,
    class_ids: np.ndarray,
    batch_size: int,
    seed: int = 0,
    flip: bool = True,
) -> tf.data.Dataset:
    """An endless, shuffled, batched dataset for `TextToImageGAN.fit`.

    Args:
        images: uint8 [N, H, W, 3].
        caption_embeddings: float32 [N, C, D], the embeddings of each image's C captions.
        class_ids: int [N]; wrong images are drawn from other classes.
        batch_size: the global batch size (batches are dropped at the end of an epoch).
        seed: seeds shuffling, caption sampling and flips (the same seed gives the same stream).
        flip: random horizontal flips.

    Returns:
        Batches of dicts: `image` float32 [B, H, W, 3] in [-1, 1]; `embedding` float32 [B, D];
        `class_id` int32 [B].
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
    images_t = tf.constant(images)
    embeddings_t = tf.constant(caption_embeddings, tf.float32)
    class_t = tf.constant(class_ids, tf.int32)

    def to_batch(index, randomness):
        # Vectorized over the batch: one gather per tensor instead of one map call per image.
        caption = randomness[:, 0] % num_captions
        image = tf.cast(tf.gather(images_t, index), tf.float32) / 127.5 - 1.0
        if flip:
            mirrored = (randomness[:, 1] % 2 == 0)[:, None, None, None]
            image = tf.where(mirrored, image[:, :, ::-1, :], image)
        return {
            "image": image,
            "embedding": tf.gather_nd(embeddings_t, tf.stack([index, caption], axis=1)),
            "class_id": tf.gather(class_t, index),
        }

    indices = (
        tf.data.Dataset.range(num_images)
        .shuffle(num_images, seed=seed, reshuffle_each_iteration=True)
        .repeat()
    )
    randomness = tf.data.Dataset.random(seed=seed + 1).batch(2)
    return (
        tf.data.Dataset.zip(indices, randomness)
        .batch(batch_size, drop_remainder=True)
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
