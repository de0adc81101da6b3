"""The caption cache: on its own with a counting stand-in encoder (what is encoded, what is kept,
what is evicted), then inside the export against an export without it (same outputs, an empty
cache after every load, the bound, the TF1 loader TF Serving uses, concurrent requests)."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.serving import export
from t2i_keras.serving.caption_cache import MAX_CACHED_CAPTION_BYTES, CaptionCache

DIM = 4
# The encoder's output for a caption changes with the other captions of its batch by up to 1.6e-7
# (measured over 27 batches of 1-255 captions; the cache encodes other batches than an uncached
# export does): the 1e-6 that test_export allows between the export and the in-memory encoder.
BATCH_ROUND_OFF = 1e-6
SMALL_CAPACITY = 6  # recent 3 + old 3: the tests below rotate it often


def vectors_of(captions) -> tf.Tensor:
    """A distinct, exactly representable vector per caption (the stand-in encoder's output)."""
    buckets = tf.strings.to_hash_bucket_fast(captions, 1 << 20)
    return tf.cast(buckets[:, None] * DIM + tf.range(DIM, dtype=tf.int64), tf.float32)


class CountingEncoder:
    """Stands in for the text encoder and counts its calls and the captions it encoded."""

    def __init__(self):
        self.calls = tf.Variable(0, dtype=tf.int64)
        self.captions = tf.Variable(0, dtype=tf.int64)

    def __call__(self, captions):
        self.calls.assign_add(1)
        self.captions.assign_add(tf.size(captions, out_type=tf.int64))
        return vectors_of(captions)


def cached_embedder(capacity):
    """(embed, cache, encoder): `embed` is traced like the export's endpoints (no autograph)."""
    cache, encoder = CaptionCache(capacity, DIM), CountingEncoder()
    embed = tf.function(
        lambda captions: cache.embed(captions, encoder),
        input_signature=[tf.TensorSpec([None], tf.string)],
        autograph=False,
    )
    return embed, cache, encoder


def test_only_distinct_captions_that_missed_are_encoded_in_one_call():
    embed, _, encoder = cached_embedder(16)
    for captions, calls, encoded in [
        (["a", "b", "a"], 1, 2),  # a duplicate within the batch is encoded once
        (["b", "c", "a", "c"], 2, 3),  # only c is new
        (["a", "c", "b"], 2, 3),  # all hits: no encoder call at all
        ([], 2, 3),
    ]:
        vectors = embed(tf.constant(captions, tf.string))
        np.testing.assert_array_equal(vectors, vectors_of(tf.constant(captions, tf.string)))
        assert (int(encoder.calls), int(encoder.captions)) == (calls, encoded), captions


@pytest.mark.parametrize("capacity", [10, 7, 1])
def test_more_distinct_captions_than_the_capacity_keep_at_most_the_capacity(capacity):
    embed, cache, _ = cached_embedder(capacity)
    batches = [[f"caption {i}-{j}" for j in range(4)] for i in range(12)]
    batches.append([f"a batch larger than a generation {j}" for j in range(8)])
    for captions in batches + batches[-3:]:
        vectors = embed(tf.constant(captions))
        np.testing.assert_array_equal(vectors, vectors_of(tf.constant(captions)))
        assert int(cache.size()) <= capacity


def test_a_caption_used_since_the_last_rotation_outlives_the_next_one():
    embed, _, encoder = cached_embedder(4)  # 2 recent + 2 old
    for captions in (["a", "b"], ["c"], ["a"], ["d", "e"]):
        embed(tf.constant(captions))
    # ["c"] rotated {a, b} to old; the hit moved a back to recent; ["d", "e"] rotated {c, a}
    # to old and dropped b, which no request had used since.
    encoded = int(encoder.captions)
    embed(tf.constant(["a", "c", "d", "e"]))
    assert int(encoder.captions) == encoded
    embed(tf.constant(["b"]))
    assert int(encoder.captions) == encoded + 1


def test_captions_longer_than_the_key_limit_are_encoded_every_time_and_never_stored():
    embed, cache, encoder = cached_embedder(16)
    longest, too_long = "x" * MAX_CACHED_CAPTION_BYTES, "y" * (MAX_CACHED_CAPTION_BYTES + 1)
    for _ in range(2):
        vectors = embed(tf.constant([longest, too_long]))
        np.testing.assert_array_equal(vectors, vectors_of(tf.constant([longest, too_long])))
    assert int(encoder.captions) == 3 and int(cache.size()) == 1


def test_a_cache_needs_room_for_one_caption(tmp_path, tiny_run, text_encoder):
    with pytest.raises(ValueError, match="at least 1 caption"):
        CaptionCache(0)
    with pytest.raises(ValueError, match="caption_cache must be 0"):
        export.export_saved_model(tiny_run[1], text_encoder, tmp_path / "m", caption_cache=-1)


@pytest.fixture(scope="module")
def small_cache_export(tmp_path_factory, tiny_run, text_encoder):
    root = tmp_path_factory.mktemp("cached") / "tiny"
    return export.export_saved_model(
        tiny_run[1], text_encoder, root, max_batch=8, caption_cache=SMALL_CAPACITY
    )


@pytest.fixture
def cached(small_cache_export):
    """A fresh load of the small-cache export, so each test starts from an empty cache."""
    return export.load_saved_model(small_cache_export)


@pytest.fixture(scope="module")
def uncached(tmp_path_factory, tiny_run, text_encoder):
    root = tmp_path_factory.mktemp("uncached") / "tiny"
    path = export.export_saved_model(tiny_run[1], text_encoder, root, max_batch=8, caption_cache=0)
    return export.load_saved_model(path)


def cached_captions(loaded) -> int:
    """The captions in a loaded export's cache. Keras's ExportArchive keeps the resources it was
    told to track (the two tables, and the SentencePiece model) in `_misc_assets`."""
    total = 0
    for resource in loaded._misc_assets:
        try:
            total += int(tf.raw_ops.LookupTableSizeV2(table_handle=resource.resource_handle))
        except tf.errors.InvalidArgumentError:  # not a table: the SentencePiece model
            pass
    return total


def noise_for(model, batch, seed=0):
    return tf.random.stateless_normal([batch, export.noise_dim(model)], seed=[seed, 1])


def test_a_loaded_export_starts_empty_and_every_caption_signature_fills_it(cached):
    assert cached_captions(cached) == 0
    cached.signatures["serving_default"](captions=tf.constant(["a red flower"]))
    assert cached_captions(cached) == 1
    cached.signatures["generate_with_noise"](
        captions=tf.constant(["a blue flower"]), noise=noise_for(cached, 1)
    )
    assert cached_captions(cached) == 2
    cached.signatures["embed"](captions=tf.constant(["a red flower", "a pink flower"]))
    assert cached_captions(cached) == 3
    cached.signatures["generate_from_embeddings"](
        embeddings=tf.zeros([1, 512]), noise=noise_for(cached, 1)
    )
    assert cached_captions(cached) == 3


def test_outputs_equal_an_export_without_the_cache_up_to_the_encoders_batch_round_off(
    cached, uncached
):
    long = "a flower with many petals " * 50  # over MAX_CACHED_CAPTION_BYTES: never cached
    requests = [
        ["a red flower", "a blue flower"],
        ["a blue flower", "a red flower", "a blue flower", "a yellow flower"],
        [b"", b"a \xff\xfe flower", b"a red flower", b""],  # invalid UTF-8 too
        [long, "a red flower", long],
        [f"a flower with {n} petals" for n in range(8)],  # more than the capacity: rotations
        ["a red flower", "a flower with 7 petals", "a flower with 0 petals", "a red flower"],
    ]
    for i, captions in enumerate(requests):
        captions = tf.constant(captions)
        got = cached.signatures["embed"](captions=captions)["embeddings"].numpy()
        want = uncached.signatures["embed"](captions=captions)["embeddings"].numpy()
        if i == 0:  # all new and distinct: the very batch the uncached export encodes
            np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got, want, rtol=0, atol=BATCH_ROUND_OFF)
        for row, caption in enumerate(captions.numpy()):
            first = list(captions.numpy()).index(caption)
            np.testing.assert_array_equal(got[row], got[first])  # duplicates: one vector
        noise = noise_for(cached, len(captions), seed=i)
        images = [
            model.signatures["generate_with_noise"](captions=captions, noise=noise)["images"]
            for model in (cached, uncached)
        ]
        # uint8 rounding can turn the round-off into one level; more would be a real difference.
        assert np.abs(images[0].numpy().astype(int) - images[1].numpy()).max() <= 1
    assert cached_captions(cached) <= SMALL_CAPACITY


def test_a_hit_returns_the_vector_first_returned_to_every_signature(exported_model):
    loaded = export.load_saved_model(exported_model)  # the default capacity: nothing is evicted
    first = loaded.signatures["embed"](captions=tf.constant(["a red flower", "a blue flower"]))
    captions = tf.constant(["a blue flower", "a pink flower", "a red flower", "a red flower"])
    again = loaded.signatures["embed"](captions=captions)["embeddings"].numpy()
    first = first["embeddings"].numpy()
    np.testing.assert_array_equal(again[[0, 2, 3]], first[[1, 0, 0]])
    noise = noise_for(loaded, 4)
    from_captions = loaded.signatures["generate_with_noise"](captions=captions, noise=noise)
    from_embeddings = loaded.signatures["generate_from_embeddings"](
        embeddings=tf.constant(again), noise=noise
    )
    np.testing.assert_array_equal(from_captions["images"], from_embeddings["images"])


def test_distinct_captions_beyond_the_capacity_keep_the_loaded_cache_bounded(cached, uncached):
    batches = [[f"flower {i} with {j} petals" for j in range(8)] for i in range(5)]
    for captions in batches + batches[:1]:
        captions = tf.constant(captions)
        got = cached.signatures["embed"](captions=captions)["embeddings"]
        want = uncached.signatures["embed"](captions=captions)["embeddings"]
        np.testing.assert_allclose(got, want, rtol=0, atol=BATCH_ROUND_OFF)
        assert cached_captions(cached) <= SMALL_CAPACITY


def test_the_tf1_loader_keeps_one_cache_across_session_runs(small_cache_export, uncached):
    # TF Serving loads exports through this path; an anonymous table would be a new, empty one
    # on every run there (a cache that never hits) while tf.saved_model.load would still share it.
    captions = [b"a red flower", b"a blue flower", b"a red flower"]
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], str(small_cache_export)
        )
        # The ops that create the two tables (named ones, or anonymous ones made on every run).
        tables = [op for op in session.graph.get_operations() if "MutableHashTable" in op.type]
        assert len(tables) == 2, [op.type for op in tables]
        size = tf.add_n([tf.raw_ops.LookupTableSizeV2(table_handle=t.outputs[0]) for t in tables])
        embed = meta_graph.signature_def["embed"]
        feed, fetch = embed.inputs["captions"].name, embed.outputs["embeddings"].name
        first = session.run(fetch, {feed: captions})
        assert session.run(size) == 2
        again = session.run(fetch, {feed: captions[::-1]})
    np.testing.assert_array_equal(again, first[::-1])
    want = uncached.signatures["embed"](captions=tf.constant(captions))["embeddings"]
    np.testing.assert_allclose(first, want, rtol=0, atol=BATCH_ROUND_OFF)


def test_concurrent_requests_with_overlapping_captions_get_their_own_captions_vectors(
    cached, uncached
):
    # 8 captions (the max batch) share a cache of 6: requests keep rotating it under each other.
    pool = [f"a {c} flower with {n} petals" for c in ("red", "blue", "pink", "white") for n in "38"]
    reference = uncached.signatures["embed"](captions=tf.constant(pool))["embeddings"].numpy()
    noise = noise_for(cached, 8).numpy()
    results, errors = [], []

    def client(seed):
        rng = np.random.default_rng(seed)
        try:
            for call in range(12):
                rows = rng.integers(0, len(pool), size=rng.integers(1, 9))  # duplicates too
                captions = tf.constant([pool[r] for r in rows])
                if call % 2:
                    out = cached.signatures["embed"](captions=captions)["embeddings"]
                else:
                    out = cached.signatures["generate_with_noise"](
                        captions=captions, noise=noise[: len(rows)]
                    )["images"]
                results.append((call % 2, rows, out.numpy()))
        except Exception as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == 6 * 12
    for is_embed, rows, out in results:
        if is_embed:
            np.testing.assert_allclose(out, reference[rows], rtol=0, atol=BATCH_ROUND_OFF)
        else:
            want = uncached.signatures["generate_from_embeddings"](
                embeddings=reference[rows], noise=noise[: len(rows)]
            )["images"].numpy()
            assert np.abs(out.astype(int) - want).max() <= 1
