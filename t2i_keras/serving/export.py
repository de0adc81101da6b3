"""SavedModel export for TensorFlow Serving: caption strings in, uint8 images out.

One graph holds the USE text encoder and the EMA generator (Reed et al. 2016 sample from the
generator; we use its exponential moving average, as StyleGAN and BigGAN do), written through
`keras.export.ExportArchive` with explicit `tf.TensorSpec` signatures and named outputs:

    serving_default           captions tf.string [N]                 -> images uint8 [N, H, W, 3]
    generate_with_noise       captions [N], noise float32 [N, z]     -> images (deterministic)
    generate_from_embeddings  embeddings float32 [N, D], noise [N, z] -> images
    embed                     captions [N]                           -> embeddings float32 [N, D]

The three signatures that take captions share one `CaptionCache` of recent caption embeddings
(`caption_cache` captions, 0 turns it off), so a repeated caption skips the text encoder. With a
`NearestCaptionSnap`, the drawing signatures replace an embedding far from every training caption
by its nearest training caption's before the generator (`t2i_keras.text.anchors`).

Layout, as TF Serving expects: `<export_root>/<version>/` (integer versions; the server serves the
newest), `<version>/assets.extra/tf_serving_warmup_requests` (one PredictionLog per signature, so
the first user request does not pay for graph warm-up) and `<export_root>/models.config`.

Bad requests fail inside the graph with an InvalidArgumentError naming the problem (TF Serving
turns it into an HTTP 400 / gRPC INVALID_ARGUMENT), never a crashed server: batches above
`max_batch`, noise whose batch differs from the captions', non-finite noise or embeddings.
Empty batches give empty outputs; empty, huge or invalid-UTF-8 captions are defined by the encoder.
"""

from __future__ import annotations

import os
import pathlib
import re

import keras
import numpy as np
import tensorflow as tf

from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.serving.caption_cache import DEFAULT_CAPACITY, CaptionCache
from t2i_keras.serving.signatures import SIGNATURES
from t2i_keras.text.anchors import NearestCaptionSnap
from t2i_keras.text.encoder import TextEncoder
from t2i_keras.utils.files import (
    WriteFailedError,
    atomic_directory,
    atomic_write_bytes,
    exclusive_lock,
)
from t2i_keras.utils.sampling import sample_grid

WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
DEFAULT_MAX_BATCH = 256


def export_saved_model(
    gan: TextToImageGAN,
    encoder: TextEncoder,
    export_root: str | os.PathLike,
    version: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    model_name: str | None = None,
    caption_cache: int = DEFAULT_CAPACITY,
    caption_snap: NearestCaptionSnap | None = None,
) -> pathlib.Path:
    """Writes the EMA generator and the text encoder as `<export_root>/<version>/`.

    The version folder is written under a temporary name and renamed into place, so neither TF
    Serving (which ignores non-numeric folders) nor a later load ever sees a half-written export.

    Args:
        gan: a trained TextToImageGAN; its EMA generator is exported.
        encoder: the text encoder the GAN was trained with (its module is copied in).
        export_root: the model's base path (TF Serving's `base_path`).
        version: integer version; default the next free one.
        max_batch: requests with more captions fail with a clear error.
        model_name: the name in `models.config`; default the export root's folder name.
        caption_cache: the most caption embeddings the served model keeps (0: no cache).
        caption_snap: draw embeddings far from every training caption as their nearest
            training caption (`t2i_keras.text.anchors`) in every signature that draws; None
            draws every embedding as it is. The `embed` signature returns the encoder's own.

    Returns:
        The version folder.
    """
    export_root = pathlib.Path(export_root)
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be a positive integer, got {version!r}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    if caption_cache < 0:
        raise ValueError(f"caption_cache must be 0 (off) or a positive size, got {caption_cache}")
    generator = gan.ema_generator
    if encoder.output_dim != generator.embedding_dim:
        raise ValueError(
            f"the encoder gives {encoder.output_dim}-d embeddings but the generator was trained on "
            f"{generator.embedding_dim}-d ones: export with the encoder the run was trained with"
        )
    if caption_snap is not None and caption_snap.embedding_dim != generator.embedding_dim:
        raise ValueError(
            f"the caption snap holds {caption_snap.embedding_dim}-d anchors but the generator "
            f"takes {generator.embedding_dim}-d embeddings: build it from the run's own captions"
        )
    # One export per base path at a time: two would both take the same "next free" version.
    with exclusive_lock(export_root, "export"):
        if version is None:
            version = next_version(export_root)
        target = export_root / str(version)
        if target.exists():
            raise FileExistsError(
                f"{target} already exists: TF Serving versions are immutable; pick another "
                "--version or leave it out to take the next free one"
            )
        archive = _build_archive(generator, encoder, max_batch, caption_cache, caption_snap)
        with atomic_directory(target) as tmp:
            try:
                archive.write_out(str(tmp), verbose=False)
                write_warmup_requests(tmp, generator.z_dim, model_name or export_root.name)
            except tf.errors.OpError as error:  # TF's file system layer, not Python's
                raise WriteFailedError(target, error) from error
        write_models_config(export_root, model_name or export_root.name)
    return target


def _build_archive(
    generator,
    encoder: TextEncoder,
    max_batch: int,
    caption_cache: int,
    caption_snap: NearestCaptionSnap | None,
) -> keras.export.ExportArchive:
    z_dim, embedding_dim = generator.z_dim, generator.embedding_dim
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.track(encoder)
    if caption_snap is not None:
        archive.track(caption_snap)
    if caption_cache:
        cache = CaptionCache(caption_cache, embedding_dim)
        archive.track(cache)  # its tables are resources, which endpoints do not track by themselves

        def encode(captions):
            return cache.embed(captions, encoder)
    else:
        encode = encoder

    def check_batch(batch):
        return tf.debugging.assert_less_equal(
            batch,
            tf.constant(max_batch, batch.dtype),
            message=f"too many captions in one request: the maximum batch is {max_batch}; "
            "split the request",
        )

    def checked(tensor, batch, name):
        """`tensor` once its shape matches and its values are finite (else a clear error)."""
        # Signature wrappers of a reloaded SavedModel do not check shapes (TF Serving's
        # placeholders do): without this, a wrong size fails deep inside a MatMul.
        size = z_dim if name == "noise" else embedding_dim
        tensor = tf.ensure_shape(tensor, [None, size], name=f"{name}_must_be_N_by_{size}")
        checks = [
            tf.debugging.assert_equal(
                tf.shape(tensor)[0],
                batch,
                message=f"{name} must have one row per caption (shape [N, {size}])",
            ),
            tf.debugging.assert_all_finite(tensor, f"{name} holds NaN or Inf"),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(tensor)

    def images_from(embeddings, noise):
        if caption_snap is not None:
            embeddings = caption_snap(embeddings)
        images = generator([embeddings, noise], training=False)
        # [-1, 1] -> [0, 255]: the same rounding as t2i_keras.utils.plots.to_uint8.
        pixels = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
        return tf.cast(tf.clip_by_value(pixels, 0.0, 255.0), tf.uint8)

    captions_spec = tf.TensorSpec([None], tf.string, name="captions")
    noise_spec = tf.TensorSpec([None, z_dim], tf.float32, name="noise")
    embeddings_spec = tf.TensorSpec([None, embedding_dim], tf.float32, name="embeddings")

    def embed(captions):
        with tf.control_dependencies([check_batch(tf.shape(captions)[0])]):
            return {"embeddings": encode(captions)}

    def generate_from_embeddings(embeddings, noise):
        batch = tf.shape(embeddings)[0]
        with tf.control_dependencies([check_batch(batch)]):
            embeddings = checked(embeddings, batch, "embeddings")
            return {"images": images_from(embeddings, checked(noise, batch, "noise"))}

    def generate_with_noise(captions, noise):
        batch = tf.shape(captions)[0]
        with tf.control_dependencies([check_batch(batch)]):
            return {"images": images_from(encode(captions), checked(noise, batch, "noise"))}

    def serving_default(captions):
        batch = tf.shape(captions)[0]
        with tf.control_dependencies([check_batch(batch)]):
            noise = tf.random.normal([batch, z_dim])  # fresh noise on every call
            return {"images": images_from(encode(captions), noise)}

    endpoints = {
        "serving_default": (serving_default, [captions_spec]),
        "generate_with_noise": (generate_with_noise, [captions_spec, noise_spec]),
        "generate_from_embeddings": (generate_from_embeddings, [embeddings_spec, noise_spec]),
        "embed": (embed, [captions_spec]),
    }
    for name in SIGNATURES:
        archive.add_endpoint(name, *endpoints[name])
    return archive


def next_version(export_root: str | os.PathLike) -> int:
    """One more than the highest integer version folder (1 for a new model)."""
    return max(list_versions(export_root), default=0) + 1


def list_versions(export_root: str | os.PathLike) -> list[int]:
    root = pathlib.Path(export_root)
    if not root.is_dir():
        return []
    return sorted(
        int(p.name) for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)
    )


def resolve_version_dir(path: str | os.PathLike) -> pathlib.Path:
    """A version folder as is; a model's base path -> its newest version (as TF Serving does)."""
    path = pathlib.Path(path)
    if (path / "saved_model.pb").exists():
        return path
    versions = list_versions(path)
    if not versions:
        raise FileNotFoundError(
            f"{path} is neither a SavedModel folder nor a base path with integer version folders; "
            "export one with `t2i-keras export --run <run dir> --export-dir saved_models/<name>`"
        )
    return path / str(versions[-1])


def load_saved_model(path: str | os.PathLike):
    """Loads an export (a version folder or a base path: newest version) for inference."""
    import tensorflow_text  # noqa: F401  registers the SentencePiece ops the encoder uses

    return tf.saved_model.load(str(resolve_version_dir(path)))


def noise_dim(model) -> int:
    """z_dim read from the `generate_with_noise` signature of a loaded export."""
    spec = model.signatures["generate_with_noise"].structured_input_signature[1]["noise"]
    return int(spec.shape[-1])


def generate_from_saved_model(
    model, captions: list[str], num_per_caption: int = 8, seed: int = 0
) -> np.ndarray:
    """uint8 [len(captions), num_per_caption, H, W, 3]; the same seed gives the same images."""
    signature = model.signatures["generate_with_noise"]

    def generate(repeated, noise):
        images = signature(captions=tf.constant(repeated, tf.string), noise=tf.constant(noise))
        return images["images"].numpy()

    captions = np.asarray(captions, dtype=object)
    return sample_grid(generate, captions, num_per_caption, seed, noise_dim(model))


def warmup_requests(z_dim: int, model_name: str) -> list:
    """One small PredictRequest per signature, as PredictionLog protos (TF Serving's format)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    captions = tf.make_tensor_proto(np.array([b"a flower with pink petals"], dtype=object))
    noise = tf.make_tensor_proto(np.zeros((1, z_dim), np.float32))
    inputs_by_signature = {
        "serving_default": {"captions": captions},
        "generate_with_noise": {"captions": captions, "noise": noise},
        "embed": {"captions": captions},
    }
    logs = []
    for signature, inputs in inputs_by_signature.items():
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
        )
        for key, proto in inputs.items():
            request.inputs[key].CopyFrom(proto)
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def write_warmup_requests(version_dir: str | os.PathLike, z_dim: int, model_name: str) -> None:
    path = pathlib.Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(z_dim, model_name):
            writer.write(log.SerializeToString())


def models_config_text(model_name: str, base_path: str) -> str:
    """A ModelServerConfig (text proto) serving the newest version of one model."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    model.model_version_policy.latest.num_versions = 1
    return text_format.MessageToString(config)


def write_models_config(export_root: str | os.PathLike, model_name: str) -> pathlib.Path:
    """`<export_root>/models.config` with the base path the official Docker image mounts."""
    path = pathlib.Path(export_root) / "models.config"
    text = models_config_text(model_name, f"/models/{model_name}")
    atomic_write_bytes(path, text.encode())
    return path


def unregistered_ops(version_dir: str | os.PathLike) -> set[str]:
    """Ops used by the graph or its function library that this process has not registered.

    Run it in a process that imported only TensorFlow and TF Text: TF Serving's model server links
    exactly those (`tensorflow_text:ops_lib`), so an empty set means the server can load the export.
    """
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((pathlib.Path(version_dir) / "saved_model.pb").read_bytes())
    used = set()
    for meta_graph in saved_model.meta_graphs:
        used.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            used.update(node.op for node in function.node_def)
    defined_functions = {
        f.signature.name for m in saved_model.meta_graphs for f in m.graph_def.library.function
    }
    return {op for op in used - defined_functions if op_def_registry.get(op) is None}
