"""Layer factories and block arithmetic shared by the generator and the discriminator."""

from __future__ import annotations

import functools
import math

import keras
from keras import layers

from t2i_keras.models.kinds import IMAGE_SIZES


# DCGAN's initialisation and batch-norm momentum (Radford et al. 2016, §4; PyTorch's 0.1 update
# rate), which Reed et al. 2016 also use; Keras' defaults (Glorot, 0.99) train markedly slower.
# A fresh initializer per layer, made when the layer is: an unseeded Keras initializer draws its
# seed when constructed, so one made at import time would ignore `keras.utils.set_random_seed`
# (runs would not repeat) and would give every layer of the same shape the same weights.
def _with_dcgan_init(layer_class):
    def make(*args, **kwargs):
        return layer_class(
            *args, kernel_initializer=keras.initializers.RandomNormal(stddev=0.02), **kwargs
        )

    return make


dense = _with_dcgan_init(layers.Dense)
conv = _with_dcgan_init(layers.Conv2D)
conv_transpose = _with_dcgan_init(layers.Conv2DTranspose)
# Synchronized across replicas: under tf.distribute each replica normalizes with the statistics of
# the global batch, so N replicas at batch B train exactly like one device at batch N·B.
batch_norm = functools.partial(layers.BatchNormalization, momentum=0.9, synchronized=True)


def upsampling_blocks(image_size: int) -> int:
    """Number of stride-2 up-sampling steps from the 4x4 seed to `image_size`."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    return int(math.log2(image_size // 4))


def block_filters(filters: int, blocks: int) -> list[int]:
    """DCGAN widths: doubling towards the 4x4 end, capped at 8x `filters` (as StackGAN does at
    high resolution, where the uncapped widths would reach 16x-32x)."""
    return [min(filters * 8, filters * 2 ** (blocks - 1 - i)) for i in range(blocks)]
