"""Real datasets prepared once: decoded, resized, captions embedded, stored as TFRecord shards.

Decoding full-size photos and embedding every caption costs far more than a training step on
64x64 images, and gives the same result every epoch of every run. `prepare_dataset` does it once
into `cache_dir("prepared")/<key>`, where the key hashes everything the result depends on: the
source files (paths, sizes, modification times), split, image size, resize policy, caption cap,
and the text encoder's identity. A second run with the same inputs reuses the folder; a changed
file or encoder gives a new key, hence a rebuild. Folders are written with `atomic_directory`, so
a killed run never leaves a half-written cache that a later run would trust.

The folder's format, its writer and reader are in `shards`; `streaming` reads it batch by batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib

import numpy as np
from tqdm.auto import tqdm

from t2i_keras.data import coco, folder, images, reed, shards
from t2i_keras.data.kinds import REAL_DATASETS, RESIZE_POLICIES
from t2i_keras.data.records import ISSUE_KINDS, CaptionedSource
from t2i_keras.text.embeddings import embed_captions
from t2i_keras.text.encoder import BUILTIN_HANDLE, TextEncoder, encoder_identity
from t2i_keras.utils import files


def read_source(
    kind: str,
    data_dir: str | os.PathLike,
    split: str = "train",
    resize_policy: str = "center_crop",
    max_captions: int | None = None,
) -> CaptionedSource:
    """Reads a dataset's captions and image list (no image is decoded yet).

    Args:
        kind: one of `kinds.REAL_DATASETS`: "oxford102", "cub" (Reed et al.'s layouts, `reed`),
            "coco" (`coco`) or "folder" (a folder with sidecar captions or a CSV/JSONL table,
            `folder`).
        data_dir: where the dataset is.
        split: the split; see each reader for the names it knows.
        resize_policy: one of `kinds.RESIZE_POLICIES`; "bbox" (CUB only) also reads the boxes.
        max_captions: keep at most this many captions per image (the rest are counted).
    """
    if kind not in REAL_DATASETS:
        raise ValueError(f"Unknown dataset kind {kind!r}; choose one of {REAL_DATASETS}")
    if resize_policy not in RESIZE_POLICIES:
        raise ValueError(
            f"Unknown resize policy {resize_policy!r}; choose one of {RESIZE_POLICIES}"
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
    """The cache folder name: readable settings, then a hash of all the content depends on."""
    description = {
        "format": shards.FORMAT_VERSION,
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
            source.report.add(kind, path, f"{path}: {ISSUE_KINDS[kind][1]}")
    return ok


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
    written = shards.write_shards(
        target,
        source.split,
        kept,
        pixels,
        np.flatnonzero(ok),
        flat,
        [group_index[e.group] for e in kept],
        examples_per_shard or max(1, shards.SHARD_BYTES // per_example),
    )
    del pixels
    (target / "images.npy").unlink()
    summary = {"num_examples": len(kept), "num_captions": len(flat)}
    report = source.report.to_json(**header, **summary)
    (target / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return {
        "format_version": shards.FORMAT_VERSION,
        **header,
        **summary,
        "max_captions": max_captions,
        "embedding_dim": int(flat.shape[1]),
        "class_names": groups,
        "shards": written,
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
) -> shards.PreparedDataset:
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
        return shards.open_prepared(target)
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
        return shards.open_prepared(target)  # another process finished the same folder first
    return dataclasses.replace(shards.open_prepared(target), reused=False)
