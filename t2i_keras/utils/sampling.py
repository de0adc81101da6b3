"""Seeded noise and uint8 images, shared by every sampler: training grids, the metrics callback,
inference from a run, the SavedModel export and the serving client.

numpy only, so that `t2i_keras.serving.client` stays free of TensorFlow and Keras. The same seed
gives the same noise, hence the same images, whichever path draws them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def seeded_noise(seed: int, count: int, z_dim: int) -> np.ndarray:
    """float32 [count, z_dim] drawn from N(0, I) with `seed`."""
    return np.random.default_rng(seed).standard_normal((count, z_dim)).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] (or already uint8) -> uint8 [0, 255]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def sample_grid(
    generate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    inputs: np.ndarray,
    num_per_caption: int,
    seed: int,
    z_dim: int,
) -> np.ndarray:
    """uint8 [len(inputs), num_per_caption, H, W, 3] from `generate(inputs, noise)`.

    Each row of `inputs` (a caption or its embedding) is repeated `num_per_caption` times and
    paired with `seeded_noise(seed, ...)`; `generate` may return images in [-1, 1] or uint8.
    """
    repeated = np.repeat(inputs, num_per_caption, axis=0)
    images = to_uint8(generate(repeated, seeded_noise(seed, len(repeated), z_dim)))
    return images.reshape(len(inputs), num_per_caption, *images.shape[1:])
