"""Where derived artefacts live (the built USE module, converted weights, caches), how they are
named, and how they are written without ever leaving a half-written copy behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Iterator


def cache_dir(*parts: str) -> pathlib.Path:
    """Returns (and creates) a folder under the t2i_keras cache.

    The root is `$T2I_CACHE_DIR` if set, else `$TFHUB_CACHE_DIR/t2i_keras` (so users who already
    point TF Hub at a big disk get our artefacts there too), else `~/.cache/t2i_keras`.
    """
    if os.environ.get("T2I_CACHE_DIR"):
        root = pathlib.Path(os.environ["T2I_CACHE_DIR"])
    elif os.environ.get("TFHUB_CACHE_DIR"):
        root = pathlib.Path(os.environ["TFHUB_CACHE_DIR"]) / "t2i_keras"
    else:
        root = pathlib.Path.home() / ".cache" / "t2i_keras"
    path = root.joinpath(*parts).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[pathlib.Path]:
    """Yields a temporary sibling folder that becomes `target` only if the block succeeds.

    A rename within one file system is atomic, so a reader (or a later run after a kill) sees
    either no `target` or a complete one, never a partial write. With `overwrite`, an existing
    target is moved aside first and removed only after the new one is in place.
    """
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; others (a server) must read it
        old = None
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} already exists; refusing to overwrite it")
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, suffix: str = "") -> Iterator[pathlib.Path]:
    """Yields a temporary sibling path that replaces `target` only if the block succeeds.

    The one way files are written here (see `atomic_directory` for why a rename). `suffix` is for
    writers that choose a format by the file name (Keras' `model.save`).
    """
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private, unlike a plain open()
        yield pathlib.Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `target` through `atomic_file`, synced to disk before the rename."""
    with atomic_file(target) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_model_atomically(model, path: str | os.PathLike) -> None:
    """`model.save(path)` (a Keras model, as `.keras`) through `atomic_file`."""
    with atomic_file(path, suffix=".keras") as tmp:
        model.save(tmp)


def cache_key(identity: str, *details: str) -> str:
    """A file name for a cached artefact: a readable slug of `identity` and a hash of
    `identity` and `details` (settings and format versions that also change the artefact)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:60].strip("._-")
    digest = hashlib.sha256("|".join((identity, *details)).encode()).hexdigest()[:16]
    return f"{slug}-{digest}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
