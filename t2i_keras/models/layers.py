"""Layer factories and block arithmetic shared by the generator and the discriminator."""

from __future__ import annotations

import functools
import math

import keras
from keras import layers

from t2i_keras.models.kinds import IMAGE_SIZES

# Every network here is NHWC: the input pipeline yields [B, H, W, 3], the 4x4 seed is reshaped to
# [B, 4, 4, C] and text is concatenated on the last axis. So each spatial layer names its layout
# instead of following Keras' global `image_data_format` (~/.keras/keras.json), which set to
# channels_first would break the networks. NHWC is also the layout of cuDNN's float16/bfloat16
# tensor-core kernels; in float32 TensorFlow's layout optimizer (grappler) converts the graph's
# convolutions to NCHW on GPUs by itself, so nothing here transposes.
DATA_FORMAT = "channels_last"


# DCGAN's initialisation and batch-norm momentum (Radford et al. 2016, §4; PyTorch's 0.1 update
# rate), which Reed et al. 2016 also use; Keras' defaults (Glorot, 0.99) train markedly slower.
# A fresh initializer per layer, made when the layer is: an unseeded Keras initializer draws its
# seed when constructed, so one made at import time would ignore `keras.utils.set_random_seed`
# (runs would not repeat) and would give every layer of the same shape the same weights.
def _with_dcgan_init(layer_class, **fixed):
    def make(*args, **kwargs):
        return layer_class(
            *args,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
            **fixed,
            **kwargs,
        )

    return make


dense = _with_dcgan_init(layers.Dense)
conv = _with_dcgan_init(layers.Conv2D, data_format=DATA_FORMAT)
conv_transpose = _with_dcgan_init(layers.Conv2DTranspose, data_format=DATA_FORMAT)
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
