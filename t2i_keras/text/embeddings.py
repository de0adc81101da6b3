"""Captions embedded in bulk, with an on-disk cache keyed by caption text and encoder identity."""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import uuid
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from t2i_keras.text.encoder import TextEncoder, encoder_identity
from t2i_keras.utils import files


def _caption_key(caption: str) -> str:
    return hashlib.sha1(caption.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Caption embeddings on disk, keyed by caption text and encoder identity.

    Each encoder identity has its own folder, so changing the encoder never serves stale vectors.
    New vectors are appended as new shard files (each written atomically), which keeps concurrent
    writers (several workers) from clobbering each other.
    """

    def __init__(self, root: str | os.PathLike, identity: str):
        self.identity = identity
        self.folder = pathlib.Path(root) / hashlib.sha1(identity.encode()).hexdigest()[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "IDENTITY").write_text(identity + "\n")
        self._vectors: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("shard-*.npz")):
            with np.load(shard) as npz:
                self._vectors.update(zip(npz["keys"].tolist(), npz["vectors"]))

    def lookup(self, captions: Sequence[str]) -> list[np.ndarray | None]:
        return [self._vectors.get(_caption_key(c)) for c in captions]

    def add(self, captions: Sequence[str], vectors: np.ndarray) -> None:
        keys = [_caption_key(c) for c in captions]
        self._vectors.update(zip(keys, vectors))
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys), vectors=np.asarray(vectors, np.float32))
        files.atomic_write_bytes(self.folder / f"shard-{uuid.uuid4().hex}.npz", buffer.getvalue())


def embed_captions(
    captions: Sequence[str],
    encoder: TextEncoder | None = None,
    batch_size: int = 256,
    cache_root: str | os.PathLike | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Embeds many captions in batches, with a progress bar, reusing cached vectors.

    Args:
        captions: Python strings (duplicates are embedded once).
        encoder: the `TextEncoder` to use; the built-in one by default.
        batch_size: captions per call of the module.
        cache_root: where the cache lives; `None` uses the t2i_keras cache, `False` disables it.
        progress: show a tqdm progress bar.

    Returns:
        float32 [len(captions), D], row i the embedding of captions[i].
    """
    encoder = encoder or TextEncoder()
    captions = [c if isinstance(c, str) else _decode_caption(c) for c in captions]
    unique = list(dict.fromkeys(captions))
    store = None
    if cache_root is not False:
        root = cache_root or files.cache_dir("embeddings")
        store = EmbeddingCache(root, encoder_identity(encoder.handle))
    found = store.lookup(unique) if store else [None] * len(unique)
    missing = [c for c, v in zip(unique, found) if v is None]
    vectors = {c: v for c, v in zip(unique, found) if v is not None}
    # No bar when the cache had every caption: "0 captions" is noise in the log.
    bar = tqdm(
        total=len(missing),
        desc="embedding captions",
        unit="caption",
        disable=not progress or not missing,
    )
    for start in range(0, len(missing), batch_size):
        batch = missing[start : start + batch_size]
        out = encoder(tf.constant(batch, dtype=tf.string)).numpy()
        vectors.update(zip(batch, out))
        if store:
            store.add(batch, out)
        bar.update(len(batch))
    bar.close()
    if not captions:
        return np.zeros((0, encoder.output_dim), np.float32)
    return np.stack([vectors[c] for c in captions]).astype(np.float32)


def _decode_caption(caption) -> str:
    if isinstance(caption, bytes):
        return caption.decode("utf-8", errors="replace")
    raise TypeError(f"captions must be str or bytes, got {type(caption).__name__}: {caption!r}")
