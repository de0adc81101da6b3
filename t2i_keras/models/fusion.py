"""Deep text-image fusion layers: the sentence modulates every block of the generator.

DF-GAN (Tao et al., CVPR 2022, §3.2) replaces the single input-level conditioning of GAN-INT-CLS
with "deep fusion" blocks: inside every up-sampling block, per-channel affine transforms whose
scale and shift are predicted from the sentence (and the noise) by small MLPs, each followed by a
LeakyReLU, so the text keeps steering the features at every resolution instead of being washed out
after the 4x4 seed. No batch normalization: the affines take its place, and a generator whose
output for one example depends on the rest of the batch cannot serve one caption at a time
faithfully.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from t2i_keras.models.layers import DATA_FORMAT


def upsample_nearest(features):
    """2x nearest-neighbour up-sampling as a broadcast and a reshape.

    Same values as `UpSampling2D(interpolation="nearest")`, but its gradient is a plain sum over
    the 2x2 copies; TensorFlow's ResizeNearestNeighborGrad kernel is several times slower on CPUs.
    """
    batch, height, width, channels = ops.shape(features)
    tiled = ops.broadcast_to(
        features[:, :, None, :, None, :], (batch, height, 2, width, 2, channels)
    )
    return ops.reshape(tiled, (batch, 2 * height, 2 * width, channels))


@keras.saving.register_keras_serializable(package="t2i_keras")
class TextAffine(keras.layers.Layer):
    """x -> gamma(c) * x + beta(c), per channel, with gamma and beta predicted from a condition.

    Each of gamma and beta is a two-layer MLP (Linear, ReLU, Linear). The last layers start at
    zero weight with gamma's bias at one and beta's at zero (DF-GAN's initialization), so a new
    block is the identity and the text's influence grows as training finds it useful.

    Args:
        channels: int. Channels of the feature map it modulates.

    Example:
        affine = TextAffine(64)
        y = affine([features, condition])  # features [B, H, W, 64], condition [B, C]
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.gamma_hidden = layers.Dense(channels, activation="relu", name="gamma_hidden")
        self.gamma_out = layers.Dense(
            channels, kernel_initializer="zeros", bias_initializer="ones", name="gamma_out"
        )
        self.beta_hidden = layers.Dense(channels, activation="relu", name="beta_hidden")
        self.beta_out = layers.Dense(channels, kernel_initializer="zeros", name="beta_out")

    def build(self, input_shape):
        _, condition_shape = input_shape
        for hidden, out in ((self.gamma_hidden, self.gamma_out), (self.beta_hidden, self.beta_out)):
            hidden.build(condition_shape)
            out.build((*condition_shape[:-1], self.channels))

    def call(self, inputs):
        features, condition = inputs
        gamma = self.gamma_out(self.gamma_hidden(condition))
        beta = self.beta_out(self.beta_hidden(condition))
        return features * gamma[:, None, None, :] + beta[:, None, None, :]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="t2i_keras")
class DeepFusion(keras.layers.Layer):
    """DF-GAN's fusion block: affine, LeakyReLU(0.2), affine, LeakyReLU(0.2).

    Stacking two affines with a non-linearity between them lets the condition act on the features
    non-linearly (Tao et al. 2022, §3.2), which a single FiLM layer cannot.

    Args:
        channels: int. Channels of the feature map it modulates.

    Example:
        fusion = DeepFusion(64)
        y = fusion([features, condition])
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.affine0 = TextAffine(channels, name="affine0")
        self.affine1 = TextAffine(channels, name="affine1")

    def build(self, input_shape):
        self.affine0.build(input_shape)
        self.affine1.build(input_shape)

    def call(self, inputs):
        features, condition = inputs
        x = ops.leaky_relu(self.affine0([features, condition]), 0.2)
        return ops.leaky_relu(self.affine1([x, condition]), 0.2)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="t2i_keras")
class FusedUpBlock(keras.layers.Layer):
    """2x nearest up-sampling, then a residual block with deep fusion before each 3x3 convolution.

    Nearest up-sampling followed by a 3x3 convolution has no transposed convolution's uneven
    kernel overlap, so it draws no checkerboard (Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"). The shortcut is a 1x1 convolution when the width changes.

    Args:
        in_channels: int. Width of the input feature map.
        out_channels: int. Width of the output feature map.

    Example:
        block = FusedUpBlock(128, 64)
        y = block([features, condition])  # [B, 2H, 2W, 64]
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.fuse0 = DeepFusion(in_channels, name="fuse0")
        self.conv0 = layers.Conv2D(
            out_channels, 3, padding="same", data_format=DATA_FORMAT, name="conv0"
        )
        self.fuse1 = DeepFusion(out_channels, name="fuse1")
        self.conv1 = layers.Conv2D(
            out_channels, 3, padding="same", data_format=DATA_FORMAT, name="conv1"
        )
        self.shortcut = (
            layers.Conv2D(out_channels, 1, data_format=DATA_FORMAT, name="shortcut")
            if in_channels != out_channels
            else None
        )

    def build(self, input_shape):
        features_shape, condition_shape = input_shape
        batch, height, width, _ = features_shape
        up = (batch, None if height is None else 2 * height, None if width is None else 2 * width)
        self.fuse0.build(((*up, self.in_channels), condition_shape))
        self.conv0.build((*up, self.in_channels))
        self.fuse1.build(((*up, self.out_channels), condition_shape))
        self.conv1.build((*up, self.out_channels))
        if self.shortcut is not None:
            self.shortcut.build((*up, self.in_channels))

    def call(self, inputs):
        features, condition = inputs
        x = upsample_nearest(features)
        h = self.conv0(self.fuse0([x, condition]))
        h = self.conv1(self.fuse1([h, condition]))
        return (self.shortcut(x) if self.shortcut is not None else x) + h

    def get_config(self):
        return {
            **super().get_config(),
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
        }


@keras.saving.register_keras_serializable(package="t2i_keras")
class ResidualDownBlock(keras.layers.Layer):
    """DF-GAN's discriminator block: x -> shortcut(x) + gamma * residual(x), at half the size.

    The residual is a 4x4 stride-2 convolution and a 3x3 convolution, each with LeakyReLU(0.2);
    the shortcut is a 1x1 convolution (when the width changes) and 2x average pooling. gamma is a
    learned scalar that starts at zero, so the network starts as a stack of shortcuts and learns
    how much of each residual to add (Tao et al. 2022's code).

    Args:
        in_channels: int. Width of the input.
        out_channels: int. Width of the output.

    Example:
        block = ResidualDownBlock(32, 64)
        y = block(features)  # [B, H/2, W/2, 64]
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv0 = layers.Conv2D(
            out_channels,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            data_format=DATA_FORMAT,
            name="conv0",
        )
        self.conv1 = layers.Conv2D(
            out_channels, 3, padding="same", use_bias=False, data_format=DATA_FORMAT, name="conv1"
        )
        self.shortcut = (
            layers.Conv2D(out_channels, 1, data_format=DATA_FORMAT, name="shortcut")
            if in_channels != out_channels
            else None
        )
        self.pool = layers.AveragePooling2D(2, data_format=DATA_FORMAT)

    def build(self, input_shape):
        batch, height, width, _ = input_shape
        half = (
            batch,
            None if height is None else height // 2,
            None if width is None else width // 2,
        )
        self.conv0.build(input_shape)
        self.conv1.build((*half, self.out_channels))
        if self.shortcut is not None:
            self.shortcut.build(input_shape)
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def call(self, features):
        h = ops.leaky_relu(self.conv0(features), 0.2)
        h = ops.leaky_relu(self.conv1(h), 0.2)
        x = self.shortcut(features) if self.shortcut is not None else features
        return self.pool(x) + ops.cast(self.gamma, h.dtype) * h

    def get_config(self):
        return {
            **super().get_config(),
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
        }
