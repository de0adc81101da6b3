"""PyTorch weight files read without torch: zip archives (`torch.save`, `torch.jit.save`) and the
pre-1.6 stream format, through a restricted unpickler.

The archive's pickle may only name tensors, storages and TorchScript module records, nothing
executable: every other global is refused.
"""

from __future__ import annotations

import collections
import os
import pathlib
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np


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
