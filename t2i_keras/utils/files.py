"""Where derived artefacts live (the built USE module, converted weights, caches), how they are
named, how they are written without ever leaving a half-written copy behind, and how a folder is
held by one process at a time."""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator


class WriteFailedError(OSError):
    """A file or folder could not be written (no space, read-only file system, file too large);
    the previous version of it, if any, is still in place. `filename` is the intended target."""

    def __init__(self, target: str | os.PathLike, cause: BaseException):
        code = getattr(cause, "errno", None) or errno.EIO
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        super().__init__(
            code,
            f"could not write {target}: {reason}. Nothing was replaced: the previous version "
            "(if any) is still there; free space or choose a writable place and run again",
            str(target),
        )

    def __str__(self) -> str:
        return self.strerror


class DirectoryInUseError(RuntimeError):
    """Another live process holds the folder's lock (see `exclusive_lock`)."""


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
    with _write_failures_name(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with _write_failures_name(target):
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
    with _write_failures_name(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private, unlike a plain open()
        with _write_failures_name(target):
            yield pathlib.Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# What a write can fail with that is about the place, not the data: no space or quota, a file
# size limit, a read-only or unwritable folder, a file where a folder should be.
_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
}


@contextlib.contextmanager
def _write_failures_name(target: pathlib.Path) -> Iterator[None]:
    """Turns an OSError raised while writing into a `WriteFailedError` naming `target`: the
    writer's own error names a temporary file the user never sees (it is removed afterwards).
    Other OSErrors (a missing input file read inside the block) pass unchanged."""
    try:
        yield
    except WriteFailedError:
        raise
    except OSError as error:
        if error.errno not in _WRITE_ERRNOS:
            raise
        raise WriteFailedError(target, error) from error


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


LOCK_FILE = ".t2i.lock"


@contextlib.contextmanager
def exclusive_lock(directory: str | os.PathLike, purpose: str) -> Iterator[pathlib.Path]:
    """Holds `<directory>/.t2i.lock` for the block; a second holder is refused at once.

    The lock is an advisory `flock` on the file, which the kernel releases when its process ends
    however it ends (SIGKILL, OOM, a crash): a lock left by a dead process never blocks the next
    one, without guessing from PIDs. The file records who holds it (PID, host, purpose, start
    time), so the refusal can say which process to wait for. It is emptied, not deleted, on
    release: deleting it would let two processes lock two different files of the same name.

    Args:
        directory: str or path, created if missing.
        purpose: what the holder does ("training", "export"), for the message.

    Raises:
        DirectoryInUseError: naming the folder and the holding process.
    """
    directory = pathlib.Path(directory)
    with _write_failures_name(directory / LOCK_FILE):
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryInUseError(
                f"{directory} is in use by {describe_lock_holder(directory)}; a second {purpose} "
                "there would overwrite its files. Wait for it to finish (or stop it), or use "
                "another folder"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": purpose,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield directory / LOCK_FILE
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def describe_lock_holder(directory: str | os.PathLike) -> str:
    """Who holds the lock of `directory`, as its lock file says (PID, host, purpose, start)."""
    try:
        holder = json.loads((pathlib.Path(directory) / LOCK_FILE).read_text())
        return (
            f"process {holder['pid']} on {holder['host']} ({holder['purpose']}, started "
            f"{holder['started']})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not recorded its PID yet)"


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
