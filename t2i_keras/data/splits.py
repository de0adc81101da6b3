"""A split of captioned images held in memory, as training and evaluation use it.

`load_split` gives one split ("train" or "test") of the configured dataset with its captions
embedded; `split_identity` names everything that split depends on (for caches of models trained
on it); `sample_caption_pairs` draws the (image, caption) pairs that generation is scored on.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from t2i_keras.config import Config, DataConfig
from t2i_keras.data import flowers
from t2i_keras.data.prepared import prepare_dataset
from t2i_keras.data.shards import load_prepared
from t2i_keras.text.embeddings import embed_captions
from t2i_keras.text.encoder import TextEncoder


@dataclasses.dataclass
class CaptionedImages:
    """A split held in memory: images, their captions and the captions' embeddings.

    Attributes:
        images: uint8 [N, H, W, 3].
        captions: str [N, C] ("" past an image's count).
        embeddings: float32 [N, C, D] (zero rows past an image's count).
        caption_counts: int32 [N], real captions per image (C for the procedural flowers).
        class_ids: int32 [N]; wrong images are drawn from other classes.
        attributes: extra per-image arrays (ground truth for evaluation, ids), keyed by name.
    """

    images: np.ndarray
    captions: np.ndarray
    embeddings: np.ndarray
    caption_counts: np.ndarray
    class_ids: np.ndarray
    attributes: dict[str, np.ndarray]

    def real_embeddings(self) -> np.ndarray:
        """float32 [total captions, D]: every real caption's embedding, padding left out."""
        valid = np.arange(self.embeddings.shape[1]) < self.caption_counts[:, None]
        return self.embeddings[valid]


def source_split(data: DataConfig, split: str) -> str:
    """The reader's name of our "train" or "test" split (`data.train_split` / `test_split`)."""
    return data.train_split if split == "train" else data.test_split


def generated_count(data: DataConfig, split: str) -> int:
    """How many procedural flowers the split holds (`data.num_train` / `num_test`)."""
    return data.num_train if split == "train" else data.num_test


def load_split(config: Config, split: str, encoder: TextEncoder) -> CaptionedImages:
    """One split ("train" or "test") of the configured dataset, captions embedded (cached).

    Real datasets are prepared once into the cache (decoded, resized, embedded; see
    `t2i_keras.data.prepared`) and reused by every later run.
    """
    d = config.data
    if d.dataset == "flowers":
        count = generated_count(d, split)
        examples = flowers.generate_examples(
            count, image_size=d.image_size, seed=d.seed, split=split
        )
        captions = examples["captions"]
        flat = embed_captions([str(c) for c in captions.reshape(-1)], encoder)
        return CaptionedImages(
            images=examples["image"],
            captions=captions,
            embeddings=flat.reshape(*captions.shape, -1),
            caption_counts=np.full(len(captions), captions.shape[1], np.int32),
            class_ids=examples["class_id"].astype(np.int32),
            attributes={
                k: v for k, v in examples.items() if k not in ("image", "captions", "class_id")
            },
        )
    if not d.data_dir:
        raise ValueError(
            f"dataset {d.dataset!r} is read from disk: set --data.data_dir to its folder "
            "(see the README's 'Training on real data')"
        )
    prepared = prepare_dataset(
        d.dataset,
        d.data_dir,
        source_split(d, split),
        d.image_size,
        encoder,
        resize_policy=d.resize_policy,
        max_captions=d.max_captions or None,
    )
    data = load_prepared(prepared)
    return CaptionedImages(
        images=data["images"],
        captions=data["captions"],
        embeddings=data["embeddings"],
        caption_counts=data["caption_counts"],
        class_ids=data["class_ids"],
        attributes={"ids": data["ids"]},
    )


def split_identity(config: Config, split: str) -> str:
    """Names everything a split's images and captions depend on (a cache key)."""
    d = config.data
    if d.dataset == "flowers":
        source = f"flowers-s{d.seed}-n{generated_count(d, split)}"
    else:
        source = (
            f"{d.dataset}-{os.path.abspath(d.data_dir)}-{source_split(d, split)}-{d.resize_policy}"
            f"-c{d.max_captions}"
        )
    return f"{source}-{split}-{d.image_size}px"


def sample_caption_pairs(
    caption_counts: np.ndarray, num: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`num` (image, caption) index pairs of a split, for generating and scoring.

    Images are visited in a seeded random order (test splits are often sorted by class), each once
    before any repeats; every visit takes one of the image's real captions at random.

    Returns:
        image indices int [num], caption indices int [num] (each below its image's count).
    """
    caption_counts = np.asarray(caption_counts)
    if num < 1 or len(caption_counts) == 0:
        raise ValueError(f"need num >= 1 and a non-empty split, got {num} of {len(caption_counts)}")
    rng = np.random.default_rng(seed)
    rounds = -(-num // len(caption_counts))
    images = np.concatenate([rng.permutation(len(caption_counts)) for _ in range(rounds)])[:num]
    captions = (rng.random(num) * caption_counts[images]).astype(np.int64)
    return images, captions
