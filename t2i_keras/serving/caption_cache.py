"""An in-graph cache of caption embeddings, so a served model encodes a repeated caption once.

The USE encoder is most of what a request costs with a small generator (README, "Benchmarks"), and
served captions repeat: a demo's examples, one prompt drawn with several seeds, a client's retries.
`CaptionCache.embed` looks every caption up in a table inside the SavedModel, encodes only the
ones it has not seen, in one batched encoder call, and stores them.

Keys are the caption bytes as the request sends them. Whatever an encoder does to a caption before
it tokenizes (the built-in module cuts it and repairs invalid UTF-8) is a function of those bytes,
so a key fixes what the encoder saw, for any TF Hub encoder, not only the built-in one; keying on
the built-in module's normalized text instead would only add hits for captions that differ past
its 4,096-character cut or in invalid bytes. A request's caption has no length limit (the encoder
cuts it, the request does not), so captions longer than `MAX_CACHED_CAPTION_BYTES` are encoded
every time and never stored: that bounds the keys.

Values are the vectors the encoder returned when the caption missed, returned bit for bit on every
later hit. They are not always bit-identical to what an export without the cache returns for the
same request: the encoder's output for a caption depends in the last bits on the other captions of
its batch (by up to 1.6e-7 on the test machine), and the cache encodes another batch (the misses,
each once).

Eviction keeps an approximation of the most recently used captions in two generations, `recent`
and `old`: inserts and hits found in `old` go to `recent`; when `recent` is full it becomes `old`
and the previous `old` is dropped. One rotation copies one generation (at most half the capacity)
and happens once per half a capacity of inserts. Sequential requests keep at most `capacity`
captions, so the memory is bounded by capacity x (4 x embedding_dim bytes + at most
`MAX_CACHED_CAPTION_BYTES` of key + the hash map's overhead): 12 MiB plus overhead for 4,096
512-d captions.

Concurrent requests (TF Serving runs them in parallel on one loaded model) are safe: every table op
holds the table's lock, and every entry is a (caption, vector) pair written by one insert, so a
request never reads a vector stored under another caption. Races cost hits, never results: two
requests that miss the same caption both encode and insert it, and the last insert wins (the two
vectors agree to the batch round-off above); a rotation can drop a caption another request has
just stored. Checking the size and inserting are two ops, so k overlapping requests can overshoot
the capacity by up to k x `max_batch` captions until the next rotation.

The tables are not checkpointed: a cache is state of one running server, and every load of the
export (TF Serving, `tf.saved_model.load`, the TF1 loader) starts with empty tables.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

DEFAULT_CAPACITY = 4096
# Dataset captions are a few hundred bytes (coco-mini's longest: 240); longer ones are embedded,
# only not cached.
MAX_CACHED_CAPTION_BYTES = 1024


class CaptionCache(tf.Module):
    """A bounded table of caption embeddings inside a SavedModel, shared by its signatures.

    Args:
        capacity: int, default 4096. The most captions kept (at least 1): `capacity - capacity // 2`
            in the recent generation, `capacity // 2` in the old one.
        embedding_dim: int, default 512. The encoder's output size.

    Example:
        cache = CaptionCache(capacity=4096)
        vectors = cache.embed(tf.constant(["a red flower", "a red flower"]), encoder)  # [2, 512]
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, embedding_dim: int = 512, **kwargs):
        super().__init__(**kwargs)
        if capacity < 1:
            raise ValueError(f"a caption cache holds at least 1 caption, got capacity {capacity}")
        self.capacity = capacity
        self.embedding_dim = embedding_dim
        self.recent_limit = capacity - capacity // 2
        self.old_limit = capacity // 2
        # A NaN row marks a miss (the table's lookup returns no found flag); a caption whose
        # embedding held NaN would merely never hit.
        missing = tf.fill([embedding_dim], float("nan"))
        self.recent = tf.lookup.experimental.MutableHashTable(
            tf.string, tf.float32, missing, name="recent_captions", checkpoint=False
        )
        self.old = tf.lookup.experimental.MutableHashTable(
            tf.string, tf.float32, missing, name="old_captions", checkpoint=False
        )

    def embed(self, captions: tf.Tensor, encode: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
        """float32 [N, embedding_dim] for tf.string [N]: cached rows, and `encode` of the rest.

        `encode` is called once, on the distinct captions that missed (not at all if none did).
        """
        unique, row_of_caption = tf.unique(captions)
        # The lookup's static shape is unknown; the tables hold [embedding_dim] rows.
        from_recent = tf.reshape(self.recent.lookup(unique), [-1, self.embedding_dim])
        from_old = tf.reshape(self.old.lookup(unique), [-1, self.embedding_dim])
        in_recent = ~tf.math.is_nan(from_recent[:, 0])
        in_old = ~tf.math.is_nan(from_old[:, 0])
        missed = tf.where(~(in_recent | in_old))[:, 0]
        new_captions = tf.gather(unique, missed)
        fresh = tf.cond(
            tf.size(new_captions) > 0,
            lambda: tf.cast(encode(new_captions), tf.float32),
            lambda: tf.zeros([0, self.embedding_dim]),
        )
        vectors = tf.tensor_scatter_nd_update(
            tf.where(in_recent[:, None], from_recent, from_old), missed[:, None], fresh
        )
        # New captions and those found in `old` move to `recent`, the first `recent_limit` of them.
        keep = ~in_recent & (tf.strings.length(unique) <= MAX_CACHED_CAPTION_BYTES)
        keys = tf.boolean_mask(unique, keep)[: self.recent_limit]
        values = tf.boolean_mask(vectors, keep)[: self.recent_limit]
        full = self.recent.size() + tf.size(keys, tf.int64) > self.recent_limit
        rotated = tf.cond(full, self._rotate, lambda: tf.constant(False))
        with tf.control_dependencies([rotated]):
            self.recent.insert(keys, values)
        return tf.gather(vectors, row_of_caption)

    def _rotate(self) -> tf.Tensor:
        """`recent` becomes `old` (its first `old_limit` entries); the previous `old` is dropped."""
        keys, values = self.recent.export()
        imported = tf.raw_ops.LookupTableImportV2(
            table_handle=self.old.resource_handle,
            keys=keys[: self.old_limit],
            values=values[: self.old_limit],
        )
        # Removing the exported keys, not clearing, keeps what other requests inserted meanwhile.
        with tf.control_dependencies([imported]):
            removed = self.recent.remove(keys)
        with tf.control_dependencies([removed]):
            return tf.constant(True)

    def size(self) -> tf.Tensor:
        """The number of cached captions (int64 scalar)."""
        return self.recent.size() + self.old.size()
