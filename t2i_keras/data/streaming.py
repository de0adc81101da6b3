"""Training batches streamed from disk instead of memory, for datasets too big for it.

Two paths share the augmentation of `pipeline.training_batch`: `prepared_training_dataset` (from
a prepared folder's shards) and `raw_image_dataset` (decoding the original files every time, what
training would cost without `prepared`; `benchmarks/bench_input_pipeline.py` compares them).
Training itself loads splits into memory (`splits.load_split`).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from t2i_keras.data import images, pairs, pipeline
from t2i_keras.data.records import CaptionedSource
from t2i_keras.data.shards import PreparedDataset, open_prepared, parse_records


def _randomness(seed: int, batch_size: int) -> tf.data.Dataset:
    """int64 [batch_size, 2] per batch, for `pipeline.training_batch` (static shapes)."""
    return (
        tf.data.Dataset.random(seed=seed)
        .batch(2, drop_remainder=True)
        .batch(batch_size, drop_remainder=True)
    )


def prepared_training_dataset(
    prepared: PreparedDataset | str | os.PathLike,
    batch_size: int,
    seed: int = 0,
    flip: bool = True,
    z_dim: int = 100,
    start_step: int = 0,
    shuffle_buffer: int = 4096,
) -> tf.data.Dataset:
    """`pipeline.training_dataset`'s batches, streamed from the shards instead of memory.

    For datasets that do not fit in memory (COCO at 128 px is ~6 GB of pixels). Shards are read
    in a shuffled order, interleaved, and shuffled through a buffer; records are parsed a batch at
    a time, then go through the same `pipeline.training_batch` and `pairs.add_gan_pairs` as the
    in-memory pipeline, so batches have the same keys, shapes and meaning: `image`, `embedding`
    (one of each image's real captions), `class_id`, `wrong_image`, `wrong_mask`,
    `mix_embedding`, `noise`. `z_dim` and `start_step` are as in `training_dataset`.
    """
    if not isinstance(prepared, PreparedDataset):
        prepared = open_prepared(prepared)
    if prepared.num_examples < batch_size:
        raise ValueError(
            f"The dataset has {prepared.num_examples} images, fewer than one batch of "
            f"{batch_size}: lower --train.batch_size or add images."
        )
    shards = [str(p) for p in prepared.shard_paths]
    records = (
        tf.data.Dataset.from_tensor_slices(shards)
        .shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(shards), 4),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .shuffle(min(shuffle_buffer, prepared.num_examples), seed=seed)
        .batch(batch_size, drop_remainder=True)
    )
    randomness = _randomness(seed + 1, batch_size)

    def to_batch(serialized, randomness):
        parsed = parse_records(serialized, prepared.meta, with_text=False, batch_size=batch_size)
        batch = pipeline.training_batch(
            parsed["images"],
            parsed["embeddings"],
            parsed["caption_counts"],
            parsed["class_ids"],
            randomness,
            flip,
        )
        return pairs.add_gan_pairs(batch, randomness[0], z_dim)

    return (
        tf.data.Dataset.zip(records, randomness)
        .skip(start_step)  # before the map: skipping reads records but parses nothing
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def raw_image_dataset(
    source: CaptionedSource,
    image_size: int,
    resize_policy: str = "center_crop",
    batch_size: int = 64,
    seed: int = 0,
    flip: bool = True,
) -> tf.data.Dataset:
    """Training images decoded from the original files on every visit (no cache).

    What training costs without `prepare_dataset`: read, decode, resize, flip and batch in a
    parallel `tf.data` map. A file that fails to decode is skipped with a logged warning (a
    stream cannot stop to count; `prepare_dataset` counts and reports every one).

    Returns:
        Endless batches of `image` float32 [B, S, S, 3] in [-1, 1] and `index` int32 [B], the
        position of each image in `source.examples` (to look up its captions and group).
    """
    examples = source.examples
    boxes = np.array([e.box or (0, 0, 0, 0) for e in examples], np.float32)
    files = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(examples)), np.array([str(e.image_path) for e in examples]), boxes)
    )

    def load(index, path, box):
        contents = tf.io.read_file(path)
        return index, images.decode_and_resize(contents, image_size, resize_policy, box)["image"]

    decoded = (
        files.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .ignore_errors(log_warning=True)
        .batch(batch_size, drop_remainder=True)
    )
    randomness = _randomness(seed + 1, batch_size)

    def to_batch(batch, randomness):
        index, pixels = batch
        return {
            "image": pipeline.augment_images(pixels, randomness, flip),
            "index": tf.cast(index, tf.int32),
        }

    return (
        tf.data.Dataset.zip(decoded, randomness)
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
