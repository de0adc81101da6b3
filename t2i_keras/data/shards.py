"""The prepared folder's format: `meta.json` and TFRecord shards, their writer and reader.

A prepared folder holds:

    meta.json                         sizes, class names, shards, what it was built from
    report.json                       every problem found in the source and what was done
    <split>-00000-of-00003.tfrecord   one `tf.train.Example` per image (features below)

Record features: `id` (bytes), `image` (bytes: raw uint8 [S, S, 3]; raw because decoding PNG
would cost what the cache saves), `captions` (bytes list, the real captions), `embeddings`
(bytes: float32 [max_captions, D] little-endian, zero rows past the count, so that batches parse
with one `decode_raw`), `caption_count` and `class_id` (int64).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np
import tensorflow as tf

from t2i_keras.data.records import SourceExample

FORMAT_VERSION = 1


SHARD_BYTES = 128 << 20  # big enough for sequential reads, small enough to interleave shards


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
    """A prepared folder written earlier (e.g. by `t2i-keras prepare`)."""
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


def _bytes_feature(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def write_shards(
    target: pathlib.Path,
    split: str,
    kept: list[SourceExample],
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


def parse_records(
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
    for batch in records.map(lambda s: parse_records(s, meta, with_text=True)).as_numpy_iterator():
        for name, value in batch.items():
            parts.setdefault(name, []).append(value)
    data = {name: np.concatenate(values) for name, values in parts.items()}
    decode = np.vectorize(lambda b: b.decode("utf-8", "surrogateescape"), otypes=[object])
    data["captions"] = decode(data["captions"])
    data["ids"] = decode(data["ids"]).astype(str)
    data["class_names"] = np.array(meta["class_names"], dtype=str)
    return data
