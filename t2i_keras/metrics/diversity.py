"""Does the noise matter? Mean pairwise distance between images drawn for one caption.

A generator that ignores its noise draws the same flower for every noise vector: it can match
every caption and still fail the data, where one description fits flowers at many positions,
sizes, rotations and backgrounds. The measure is the mean pairwise Euclidean distance between the
Inception pool features (the FID network's) of the images generated for one caption, averaged
over captions, next to the same measure on real images that fit the caption equally well: the
real held-out images with the same named attributes (procedural flowers), or random real images
otherwise. A ratio near 1 means the generator varies its images as much as the data does; near 0,
a collapse onto one image per caption.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over the unordered pairs of the rows of `features` [K, D]."""
    features = np.asarray(features, np.float64)
    if len(features) < 2:
        raise ValueError("a pairwise distance needs at least two feature rows")
    squared = np.sum(features**2, axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * features @ features.T
    upper = np.triu_indices(len(features), k=1)
    return float(np.mean(np.sqrt(np.maximum(distances[upper], 0.0))))


def per_group_diversity(features: np.ndarray) -> np.ndarray:
    """float64 [G]: `mean_pairwise_distance` within each group of `features` [G, K, D]."""
    return np.array([mean_pairwise_distance(group) for group in features])


def diversity(
    generated_features: np.ndarray,
    real_features: np.ndarray,
) -> dict:
    """Summary of generated vs real within-caption diversity.

    Args:
        generated_features: float [G, K, D], K generated images per caption.
        real_features: float [G, K, D], K real images fitting each caption.

    Returns:
        {"generated": mean over captions, "real": the same for real images, "ratio":
        generated / real, "captions": G, "samples_per_caption": K}.
    """
    generated = per_group_diversity(generated_features)
    real = per_group_diversity(real_features)
    return {
        "generated": float(generated.mean()),
        "real": float(real.mean()),
        "ratio": float(generated.mean() / real.mean()),
        "captions": int(len(generated)),
        "samples_per_caption": int(generated_features.shape[1]),
    }


def matching_real_images(
    targets: dict[str, np.ndarray],
    truth: dict[str, np.ndarray] | None,
    num_images: int,
    per_caption: int,
    rng: np.random.Generator,
    groups: int | None = None,
) -> np.ndarray:
    """int [G, per_caption]: for each caption, real image indices that show what it names.

    Args:
        targets: per attribute, int [G] labels the captions name (-1: not named).
        truth: per attribute, int [num_images] labels of the real images; None picks at random.
        num_images: how many real images there are.
        per_caption: images wanted per caption.
        rng: draws them.
        groups: the number of captions (default: the targets' length).
    """
    if groups is None:
        groups = len(next(iter(targets.values())))
    chosen = np.empty((groups, per_caption), np.int64)
    for g in range(groups):
        fits = np.ones(num_images, bool)
        if truth is not None:
            for name, labels in targets.items():
                if labels[g] >= 0:
                    fits &= truth[name] == labels[g]
        candidates = np.flatnonzero(fits)
        if len(candidates) < per_caption:  # a rare combination: fall back to any real image
            candidates = np.arange(num_images)
        chosen[g] = rng.choice(candidates, per_caption, replace=False)
    return chosen


def caption_diversity(
    generate: Callable,
    featurize: Callable[[np.ndarray], np.ndarray],
    captions: list[str],
    real_images: np.ndarray,
    real_index: np.ndarray,
    seed: int = 0,
) -> dict:
    """`diversity` of `generate`'s images for `captions` against `real_images[real_index]`.

    Args:
        generate: (captions, num_per_caption, seed) -> uint8 [G, K, H, W, 3].
        featurize: uint8 images [N, H, W, 3] -> features [N, D] (the FID Inception).
        captions: G captions.
        real_images: uint8 [N, H, W, 3].
        real_index: int [G, K] (`matching_real_images`).
        seed: the generator's noise seed.
    """
    groups, per_caption = real_index.shape
    generated = generate(captions, per_caption, seed)
    flat = generated.reshape(-1, *generated.shape[2:])
    generated_features = featurize(flat).reshape(groups, per_caption, -1)
    real_features = featurize(real_images[real_index.ravel()]).reshape(groups, per_caption, -1)
    return diversity(generated_features, real_features)
