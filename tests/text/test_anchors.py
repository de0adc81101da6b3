"""NearestCaptionSnap: unseen captions drawn as their nearest training caption."""

import keras
import numpy as np
import pytest

from t2i_keras.text.anchors import NearestCaptionSnap, anchors_from

ANCHORS = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]], np.float32)


def snap_of(threshold=0.9):
    snap = NearestCaptionSnap(threshold, len(ANCHORS), ANCHORS.shape[1])
    snap.set_anchors(ANCHORS)
    return snap


def test_rows_below_the_threshold_become_their_nearest_anchor_and_the_rest_pass():
    queries = np.array(
        [
            [0.8, 0.6, 0.0],  # cosine 0.8 to anchor 0, 0.6 to anchor 1: unseen -> anchor 0
            [0.1, 0.9, 0.1],  # cosine 0.98 to anchor 1: seen, passes unchanged
            [0.0, -0.5, 0.6],  # cosine 0.77 to anchor 2 (scale ignored): -> anchor 2
            [0.3, 0.0, 0.0],  # an anchor's direction at another scale: passes unchanged
        ],
        np.float32,
    )
    out = np.asarray(snap_of()(queries))
    np.testing.assert_allclose(out, [ANCHORS[0], queries[1], ANCHORS[2], queries[3]], atol=1e-6)
    # The threshold is the one knob: at 0.7 the third query (0.77) counts as seen.
    np.testing.assert_allclose(np.asarray(snap_of(0.7)(queries))[2], queries[2], atol=1e-6)


def test_an_empty_batch_gives_an_empty_batch():
    assert np.asarray(snap_of()(np.zeros((0, 3), np.float32))).shape == (0, 3)


def test_anchors_are_the_distinct_non_zero_rows_capped_by_a_seeded_draw():
    rows = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [2, 2], [3, 1]], np.float32)
    np.testing.assert_array_equal(anchors_from(rows, 10), [[0, 1], [1, 0], [2, 2], [3, 1]])
    capped = anchors_from(rows, 2, seed=3)
    assert len(capped) == 2 and len(np.unique(capped, axis=0)) == 2
    assert all(any((c == r).all() for r in rows) for c in capped)
    np.testing.assert_array_equal(capped, anchors_from(rows, 2, seed=3))
    snap = NearestCaptionSnap.from_training_embeddings(rows, 0.9, max_anchors=3)
    assert snap.num_anchors == 3 and snap.embedding_dim == 2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: NearestCaptionSnap(0.0, 3), "threshold is a cosine"),
        (lambda: NearestCaptionSnap(1.5, 3), "threshold is a cosine"),
        (lambda: NearestCaptionSnap(0.9, 0), "num_anchors must be at least 1"),
        (lambda: snap_of().set_anchors(ANCHORS[:2]), r"anchors must have shape \(3, 3\)"),
        (lambda: snap_of().set_anchors(ANCHORS * 0), "finite and non-zero"),
        (lambda: snap_of().set_anchors(ANCHORS * np.nan), "finite and non-zero"),
        (lambda: anchors_from(np.zeros((4, 3)), 10), "every embedding is zero"),
        (lambda: anchors_from(np.zeros((0, 3)), 10), "non-empty"),
        (lambda: anchors_from(ANCHORS, 0), "max_anchors must be at least 1"),
    ],
)
def test_bad_settings_and_anchors_are_refused_with_the_reason(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_config_round_trips_and_the_anchors_save_and_load_through_keras(tmp_path):
    snap = snap_of(0.85)
    clone = NearestCaptionSnap.from_config(snap.get_config())
    assert (clone.threshold, clone.num_anchors, clone.embedding_dim) == (0.85, 3, 3)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, snap(inputs))
    model.save(tmp_path / "snap.keras")
    loaded = keras.saving.load_model(tmp_path / "snap.keras")
    queries = np.array([[0.8, 0.6, 0.0], [0.0, 0.1, 1.0]], np.float32)
    np.testing.assert_allclose(loaded(queries), model(queries), atol=1e-6)
    np.testing.assert_allclose(np.asarray(loaded(queries))[0], ANCHORS[0], atol=1e-6)
