"""Real datasets prepared once: decoded, resized, captions embedded, stored as TFRecord shards.

Decoding full-size photos and embedding every caption costs far more than a training step on
64x64 images, and gives the same result every epoch of every run. `prepare_dataset` does it once
into `cache_dir("prepared")/<key>`, where the key hashes everything the result depends on: the
source files (paths, sizes, modification times), split, image size, resize policy, caption cap,
and the text encoder's identity. A second run with the same inputs reuses the folder; a changed
file or encoder gives a new key, hence a rebuild. Folders are written with `atomic_directory`, so
a killed run never leaves a half-written cache that a later run would trust.

A prepared folder holds:

    meta.json                         sizes, class names, shards, what it was built from
    report.json                       every problem found in the source and what was done
    <split>-00000-of-00003.tfrecord   one `tf.train.Example` per image (features below)

Record features: `id` (bytes), `image` (bytes: raw uint8 [S, S, 3]; raw because decoding PNG
would cost what the cache saves), `captions` (bytes list, the real captions), `embeddings`
(bytes: float32 [max_captions, D] little-endian, zero rows past the count, so that batches parse
with one `decode_raw`), `caption_count` and `class_id` (int64).

Two streaming paths share the augmentation of `pipeline.training_batch`, for training sets too big
for memory and for `scripts/bench_input_pipeline.py`: `prepared_training_dataset` (from the
shards) and `raw_image_dataset` (decoding the original files every time).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from t2i_keras.utils import files
from t2i_keras.data import coco, folder, images, pairs, pipeline, reed
from t2i_keras.data.folder import CaptionedSource
from t2i_keras.text.encoder import BUILTIN_HANDLE, TextEncoder, embed_captions, encoder_identity

DATASETS = ("oxford102", "cub", "coco", "folder")
FORMAT_VERSION = 1
_SHARD_BYTES = 128 << 20  # big enough for sequential reads, small enough to interleave shards


def read_source(
    kind: str,
    data_dir: str | os.PathLike,
    split: str = "train",
    resize_policy: str = "center_crop",
    max_captions: int | None = None,
) -> CaptionedSource:
    """Reads a dataset's captions and image list (no image is decoded yet).

    Args:
        kind: one of `DATASETS`: "oxford102", "cub" (Reed et al.'s layouts, `reed`), "coco"
            (`coco`) or "folder" (a folder with sidecar captions or a CSV/JSONL table, `folder`).
        data_dir: where the dataset is.
        split: the split; see each reader for the names it knows.
        resize_policy: one of `images.RESIZE_POLICIES`; "bbox" (CUB only) also reads the boxes.
        max_captions: keep at most this many captions per image (the rest are counted).
    """
    if kind not in DATASETS:
        raise ValueError(f"Unknown dataset kind {kind!r}; choose one of {DATASETS}")
    if resize_policy not in images.RESIZE_POLICIES:
        raise ValueError(
            f"Unknown resize policy {resize_policy!r}; choose one of {images.RESIZE_POLICIES}"
        )
    if resize_policy == "bbox" and kind != "cub":
        raise ValueError(
            f"The 'bbox' resize policy needs bounding boxes, which only 'cub' has; use "
            f"'center_crop' or 'pad' for {kind!r}"
        )
    if kind == "oxford102":
        return reed.read_oxford102(data_dir, split, max_captions)
    if kind == "cub":
        return reed.read_cub(data_dir, split, resize_policy == "bbox", max_captions)
    if kind == "coco":
        return coco.read_coco(data_dir, split, max_captions)
    return folder.read_folder(data_dir, split, max_captions)


def source_fingerprint(source: CaptionedSource) -> str:
    """A hash of every file the source depends on: relative path, size and modification time of
    the metadata and caption files read and of every example's image."""
    base = source.data_dir if source.data_dir.is_dir() else source.data_dir.parent
    digest = hashlib.sha256()
    for path in sorted({*source.files, *(e.image_path for e in source.examples)}):
        stat = path.stat()
        # Relative names: the same files moved or mounted elsewhere keep their files.
        name = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "replace"))
    return digest.hexdigest()


def prepared_key(
    source: CaptionedSource,
    image_size: int,
    resize_policy: str,
    encoder_id: str,
    max_captions: int | None = None,
) -> str:
    """The cache folder name: readable settings, then a hash of everything the content depends on."""
    description = {
        "format": FORMAT_VERSION,
        "dataset": source.kind,
        "split": source.split,
        "image_size": image_size,
        "resize_policy": resize_policy,
        "max_captions": max_captions,
        "encoder": encoder_id,
        "source": source_fingerprint(source),
    }
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    return f"{source.kind}-{source.split}-{image_size}px-{resize_policy}-{digest[:16]}"


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """A prepared folder: where it is, its `meta.json`, and whether this call reused it.

    Attributes:
        path: the folder.
        meta: `num_examples`, `num_captions`, `image_size`, `max_captions`, `embedding_dim`,
            `class_names`, `shards` (file, num_examples), and the `dataset`, `data_dir`,
            `split`, `resize_policy` and `encoder` it was built from.
        reused: True if the folder existed already (no decoding, no embedding).
    """

    path: pathlib.Path
    meta: dict
    reused: bool = False

    @property
    def report_path(self) -> pathlib.Path:
        return self.path / "report.json"

    @property
    def shard_paths(self) -> list[pathlib.Path]:
        return [self.path / shard["file"] for shard in self.meta["shards"]]

    @property
    def num_examples(self) -> int:
        return self.meta["num_examples"]


def open_prepared(path: str | os.PathLike) -> PreparedDataset:
    """A prepared folder written earlier (e.g. by `scripts/prepare_data.py`)."""
    path = pathlib.Path(path)
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a prepared dataset: it has no meta.json")
    meta = json.loads(meta_file.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} was prepared in format {meta.get('format_version')}, this version reads "
            f"format {FORMAT_VERSION}: prepare the dataset again"
        )
    return PreparedDataset(path, meta, reused=True)


def _decode_into(
    source: CaptionedSource,
    image_size: int,
    resize_policy: str,
    out: np.ndarray,
    progress: bool,
) -> np.ndarray:
    """Decodes every example's image into `out`; reports failures and conversions. Returns the
    mask of examples whose image decoded."""
    examples = source.examples
    ok = np.zeros(len(examples), bool)
    results = images.load_images(
        [e.image_path for e in examples], image_size, resize_policy, [e.box for e in examples]
    )
    for result in tqdm(
        results, total=len(examples), desc="decoding images", unit="image", disable=not progress
    ):
        path = examples[result.index].image_path
        if result.error is not None:
            source.report.add("corrupt_image", path, result.error)
            continue
        out[result.index] = result.image
        ok[result.index] = True
        for conversion in result.conversions:
            kind = f"{conversion}_image"
            source.report.add(kind, path, f"{path}: {folder.ISSUE_KINDS[kind][1]}")
    return ok


def _bytes_feature(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def _write_shards(
    target: pathlib.Path,
    split: str,
    kept: list[folder.SourceExample],
    pixels: np.ndarray,
    rows: np.ndarray,
    embeddings: np.ndarray,
    class_ids: list[int],
    examples_per_shard: int,
) -> list[dict]:
    """Writes one record per example of `kept`: its image is `pixels[rows[i]]` (reading the
    memory-mapped pixels row by row keeps memory bounded) and its captions' vectors are the next
    rows of `embeddings` (all captions, flat), zero-padded to the longest caption list."""
    max_captions = max(len(e.captions) for e in kept)
    num_shards = -(-len(kept) // examples_per_shard)
    offset, shards = 0, []
    for shard in range(num_shards):
        name = f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"
        start, stop = shard * examples_per_shard, min(len(kept), (shard + 1) * examples_per_shard)
        with tf.io.TFRecordWriter(str(target / name)) as writer:
            for i in range(start, stop):
                count = len(kept[i].captions)
                padded = np.zeros((max_captions, embeddings.shape[1]), "<f4")
                padded[:count] = embeddings[offset : offset + count]
                offset += count
                features = {
                    "id": _bytes_feature([kept[i].id.encode("utf-8", "surrogateescape")]),
                    "image": _bytes_feature([pixels[rows[i]].tobytes()]),
                    "captions": _bytes_feature([c.encode("utf-8") for c in kept[i].captions]),
                    "embeddings": _bytes_feature([padded.tobytes()]),
                    "caption_count": _int_feature(count),
                    "class_id": _int_feature(class_ids[i]),
                }
                example = tf.train.Example(features=tf.train.Features(feature=features))
                writer.write(example.SerializeToString())
        shards.append({"file": name, "num_examples": stop - start})
    return shards


def _build(
    target: pathlib.Path,
    source: CaptionedSource,
    image_size: int,
    resize_policy: str,
    encoder: TextEncoder | str,
    header: dict,
    failed_report: pathlib.Path,
    examples_per_shard: int | None,
    progress: bool,
) -> dict:
    """Decodes, embeds and writes everything into the (temporary) folder `target`; returns the
    meta. Images are decoded before captions are embedded, so that a dataset whose images are
    all unreadable fails before the slow part."""
    pixels = np.lib.format.open_memmap(
        target / "images.npy",
        mode="w+",
        dtype=np.uint8,
        shape=(len(source.examples), image_size, image_size, 3),
    )
    ok = _decode_into(source, image_size, resize_policy, pixels, progress)
    if not ok.any():
        report = source.report.to_json(**header, num_examples=0, num_captions=0)
        files.atomic_write_bytes(failed_report, json.dumps(report, indent=1).encode())
        raise ValueError(
            f"No image of {source.data_dir} ({source.kind}, split {source.split!r}) could be "
            f"decoded; full report: {failed_report}\n{source.report.summary()}"
        )
    kept = [e for e, good in zip(source.examples, ok) if good]
    model = TextEncoder(encoder) if isinstance(encoder, str) else encoder
    flat = embed_captions([c for e in kept for c in e.captions], model, progress=progress)
    groups = sorted({e.group for e in kept})
    group_index = {g: i for i, g in enumerate(groups)}
    max_captions = max(len(e.captions) for e in kept)
    per_example = image_size * image_size * 3 + max_captions * flat.shape[1] * 4
    shards = _write_shards(
        target,
        source.split,
        kept,
        pixels,
        np.flatnonzero(ok),
        flat,
        [group_index[e.group] for e in kept],
        examples_per_shard or max(1, _SHARD_BYTES // per_example),
    )
    del pixels
    (target / "images.npy").unlink()
    summary = {"num_examples": len(kept), "num_captions": len(flat)}
    report = source.report.to_json(**header, **summary)
    (target / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return {
        "format_version": FORMAT_VERSION,
        **header,
        **summary,
        "max_captions": max_captions,
        "embedding_dim": int(flat.shape[1]),
        "class_names": groups,
        "shards": shards,
    }


def prepare_dataset(
    kind: str,
    data_dir: str | os.PathLike,
    split: str,
    image_size: int,
    encoder: TextEncoder | str = BUILTIN_HANDLE,
    resize_policy: str = "center_crop",
    cache_root: str | os.PathLike | None = None,
    max_captions: int | None = None,
    examples_per_shard: int | None = None,
    progress: bool = True,
) -> PreparedDataset:
    """Reads, decodes, resizes and embeds a real dataset once, or reuses an earlier result.

    Args:
        kind: "oxford102", "cub", "coco" or "folder" (see `read_source`).
        data_dir: where the dataset is (a folder; for "folder" also a CSV/JSONL table).
        split: e.g. "train" or "test" (see each reader).
        image_size: side of the stored square images.
        encoder: a `TextEncoder`, or a handle (then the encoder is only built if the cache
            misses). Its identity is part of the key.
        resize_policy: "center_crop", "pad" or "bbox" (CUB only); see `images.resize_image`.
        cache_root: where prepared folders live; `cache_dir("prepared")` by default.
        max_captions: keep at most this many captions per image (others counted in the report).
        examples_per_shard: records per TFRecord file; by default about 128 MB per file.
        progress: tqdm bars for decoding and embedding.

    Returns:
        The prepared folder; `report_path` lists every problem found.

    Raises:
        FileNotFoundError: the layout is incomplete (the message says what to get, from where).
        ValueError: no usable example (the message summarizes why; when every image failed to
            decode, the full report is written to `<cache_root>/<key>.failed-report.json`).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    source = read_source(kind, data_dir, split, resize_policy, max_captions)
    encoder_id = encoder_identity(encoder if isinstance(encoder, str) else encoder.handle)
    root = pathlib.Path(cache_root) if cache_root else files.cache_dir("prepared")
    key = prepared_key(source, image_size, resize_policy, encoder_id, max_captions)
    target = root / key
    if (target / "meta.json").is_file():
        return open_prepared(target)
    header = {
        "dataset": kind,
        "data_dir": str(pathlib.Path(data_dir).absolute()),
        "split": split,
        "image_size": image_size,
        "resize_policy": resize_policy,
        "encoder": encoder_id,
        "key": key,
    }
    try:
        with files.atomic_directory(target) as tmp:
            meta = _build(
                tmp,
                source,
                image_size,
                resize_policy,
                encoder,
                header,
                root / f"{key}.failed-report.json",
                examples_per_shard,
                progress,
            )
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    except FileExistsError:
        return open_prepared(target)  # another process finished the same folder first
    return dataclasses.replace(open_prepared(target), reused=False)


def _parse(
    serialized: tf.Tensor, meta: dict, with_text: bool, batch_size: int = -1
) -> dict[str, tf.Tensor]:
    """Parses a batch of records into dense tensors (see the module docstring for features);
    a known `batch_size` makes the batch dimension static, as Keras prefers."""
    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "embeddings": tf.io.FixedLenFeature([], tf.string),
        "caption_count": tf.io.FixedLenFeature([], tf.int64),
        "class_id": tf.io.FixedLenFeature([], tf.int64),
    }
    if with_text:
        features["id"] = tf.io.FixedLenFeature([], tf.string)
        features["captions"] = tf.io.VarLenFeature(tf.string)
    parsed = tf.io.parse_example(serialized, features)
    size, captions, dim = meta["image_size"], meta["max_captions"], meta["embedding_dim"]
    out = {
        "images": tf.reshape(
            tf.io.decode_raw(parsed["image"], tf.uint8), [batch_size, size, size, 3]
        ),
        "embeddings": tf.reshape(
            tf.io.decode_raw(parsed["embeddings"], tf.float32), [batch_size, captions, dim]
        ),
        "caption_counts": tf.reshape(tf.cast(parsed["caption_count"], tf.int32), [batch_size]),
        "class_ids": tf.reshape(tf.cast(parsed["class_id"], tf.int32), [batch_size]),
    }
    if with_text:
        out["ids"] = parsed["id"]
        text = tf.sparse.to_dense(parsed["captions"], default_value="")
        out["captions"] = tf.pad(text, [[0, 0], [0, captions - tf.shape(text)[1]]])
    return out


def _randomness(seed: int, batch_size: int) -> tf.data.Dataset:
    """int64 [batch_size, 2] per batch, for `pipeline.training_batch` (static shapes)."""
    return (
        tf.data.Dataset.random(seed=seed)
        .batch(2, drop_remainder=True)
        .batch(batch_size, drop_remainder=True)
    )


def load_prepared(prepared: PreparedDataset | str | os.PathLike) -> dict[str, np.ndarray]:
    """A prepared dataset in memory, in id order, ready for `pipeline.training_dataset`.

    Returns:
        `images` uint8 [N, S, S, 3]; `captions` str [N, C] (object array, "" past each image's
        count); `embeddings` float32 [N, C, D] (zero rows past the count); `caption_counts`
        int32 [N] (>= 1); `class_ids` int32 [N] (indices into `class_names`); `ids` str [N];
        `class_names` str [K]. C is the largest caption count.

    Example:
        data = load_prepared(prepare_dataset("coco", "data/coco", "train", 64, encoder))
        ds = training_dataset(data["images"], data["embeddings"], data["class_ids"], 64,
                              caption_counts=data["caption_counts"])
    """
    if not isinstance(prepared, PreparedDataset):
        prepared = open_prepared(prepared)
    meta = prepared.meta
    records = tf.data.TFRecordDataset([str(p) for p in prepared.shard_paths]).batch(1024)
    parts: dict[str, list[np.ndarray]] = {}
    for batch in records.map(lambda s: _parse(s, meta, with_text=True)).as_numpy_iterator():
        for name, value in batch.items():
            parts.setdefault(name, []).append(value)
    data = {name: np.concatenate(values) for name, values in parts.items()}
    decode = np.vectorize(lambda b: b.decode("utf-8", "surrogateescape"), otypes=[object])
    data["captions"] = decode(data["captions"])
    data["ids"] = decode(data["ids"]).astype(str)
    data["class_names"] = np.array(meta["class_names"], dtype=str)
    return data


def prepared_training_dataset(
    prepared: PreparedDataset | str | os.PathLike,
    batch_size: int,
    seed: int = 0,
    flip: bool = True,
    z_dim: int = 100,
    start_step: int = 0,
    shuffle_buffer: int = 4096,
) -> tf.data.Dataset:
    """`pipeline.training_dataset`'s batches, streamed from the shards instead of memory.

    For datasets that do not fit in memory (COCO at 128 px is ~6 GB of pixels). Shards are read
    in a shuffled order, interleaved, and shuffled through a buffer; records are parsed a batch at
    a time, then go through the same `pipeline.training_batch` and `pairs.add_gan_pairs` as the
    in-memory pipeline, so batches have the same keys, shapes and meaning: `image`, `embedding`
    (one of each image's real captions), `class_id`, `wrong_image`, `wrong_mask`,
    `mix_embedding`, `noise`. `z_dim` and `start_step` are as in `training_dataset`.
    """
    if not isinstance(prepared, PreparedDataset):
        prepared = open_prepared(prepared)
    if prepared.num_examples < batch_size:
        raise ValueError(
            f"The dataset has {prepared.num_examples} images, fewer than one batch of "
            f"{batch_size}: lower --train.batch_size or add images."
        )
    shards = [str(p) for p in prepared.shard_paths]
    records = (
        tf.data.Dataset.from_tensor_slices(shards)
        .shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(shards), 4),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .shuffle(min(shuffle_buffer, prepared.num_examples), seed=seed)
        .batch(batch_size, drop_remainder=True)
    )
    randomness = _randomness(seed + 1, batch_size)

    def to_batch(serialized, randomness):
        parsed = _parse(serialized, prepared.meta, with_text=False, batch_size=batch_size)
        batch = pipeline.training_batch(
            parsed["images"],
            parsed["embeddings"],
            parsed["caption_counts"],
            parsed["class_ids"],
            randomness,
            flip,
        )
        return pairs.add_gan_pairs(batch, randomness[0], z_dim)

    return (
        tf.data.Dataset.zip(records, randomness)
        .skip(start_step)  # before the map: skipping reads records but parses nothing
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def raw_image_dataset(
    source: CaptionedSource,
    image_size: int,
    resize_policy: str = "center_crop",
    batch_size: int = 64,
    seed: int = 0,
    flip: bool = True,
) -> tf.data.Dataset:
    """Training images decoded from the original files on every visit (no cache).

    What training costs without `prepare_dataset`: read, decode, resize, flip and batch in a
    parallel `tf.data` map. A file that fails to decode is skipped with a logged warning (a
    stream cannot stop to count; `prepare_dataset` counts and reports every one).

    Returns:
        Endless batches of `image` float32 [B, S, S, 3] in [-1, 1] and `index` int32 [B], the
        position of each image in `source.examples` (to look up its captions and group).
    """
    examples = source.examples
    boxes = np.array([e.box or (0, 0, 0, 0) for e in examples], np.float32)
    files = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(examples)), np.array([str(e.image_path) for e in examples]), boxes)
    )

    def load(index, path, box):
        contents = tf.io.read_file(path)
        return index, images.decode_and_resize(contents, image_size, resize_policy, box)["image"]

    decoded = (
        files.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .ignore_errors(log_warning=True)
        .batch(batch_size, drop_remainder=True)
    )
    randomness = _randomness(seed + 1, batch_size)

    def to_batch(batch, randomness):
        index, pixels = batch
        return {
            "image": pipeline.augment_images(pixels, randomness, flip),
            "index": tf.cast(index, tf.int32),
        }

    return (
        tf.data.Dataset.zip(decoded, randomness)
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
