"""R-precision: rankings with known answers, ties, the caption pairs, the contrastive loss, and a
matcher trained for a few seconds that ranks real images' captions far above chance and noise at
chance."""

import math

import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.data import flowers
from t2i_keras.data.splits import CaptionedImages, sample_caption_pairs
from t2i_keras.metrics import r_precision
from t2i_keras.text.embeddings import embed_captions

TINY_MATCHER = {"epochs": 8, "batch_size": 64, "projection_dim": 64, "filters": 16}


def embedded_flowers(count, split, encoder):
    examples = flowers.generate_examples(count, 16, seed=0, split=split)
    captions = examples["captions"]
    flat = embed_captions([str(c) for c in captions.reshape(-1)], encoder, progress=False)
    return examples["image"], captions, flat.reshape(*captions.shape, -1)


def captioned(images, captions, embeddings):
    """A split of procedural flowers (ten captions each) as the matcher takes it."""
    counts = np.full(len(images), 10)
    return CaptionedImages(images, captions, embeddings, counts, np.zeros(len(images), int), {})


@pytest.fixture(scope="module")
def splits(text_encoder):
    return {
        "train": embedded_flowers(1024, "train", text_encoder),
        "test": embedded_flowers(64, "test", text_encoder),
    }


@pytest.fixture(scope="module")
def matcher(splits):
    return r_precision.load_caption_matcher(
        "tiny-flowers-16px",
        captioned(*splits["train"]),
        r_precision.MatcherSettings(**TINY_MATCHER),
    )


def test_hand_made_rankings_give_the_exact_fraction():
    # Two images with three pool captions each; with 4 candidates, every caption of the other
    # image is a distractor.
    image_codes = np.array([[1.0, 0.0], [0.0, 1.0]])
    caption_codes = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0], [0.3, 0.9], [0, 0]])
    owners = np.array([0, 0, 0, 1, 1, 1])
    # Image 0's caption 0 scores 1.0 against 0.0, 0.3, 0.0; image 1's caption 4 scores 0.9
    # against 0.0, 0.8, 0.6: both come first.
    both = r_precision.r_precision(
        image_codes, np.array([0, 4]), caption_codes, owners, num_candidates=4, repeats=2
    )
    assert both["top1_mean"] == 1.0 and both["top1_std"] == 0.0
    # Image 1's caption 5 scores 0.0, beaten by image 0's caption 1 (0.8).
    one = r_precision.r_precision(
        image_codes, np.array([0, 5]), caption_codes, owners, num_candidates=4, repeats=1
    )
    assert one["top1_mean"] == 0.5
    assert one["chance"] == 0.25 and one["num_images"] == 2 and one["num_candidates"] == 4


def test_the_same_sentence_of_another_image_ties():
    image_codes = np.array([[1.0, 0.0]])
    caption_codes = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    keys = np.array(["a red flower", "a red flower", "a blue flower"])
    result = r_precision.r_precision(
        image_codes, np.array([0]), caption_codes, np.array([0, 1, 2]), keys, num_candidates=3
    )
    assert result["top1_mean"] == 0.5


def test_a_pool_too_small_for_the_candidates_is_refused():
    with pytest.raises(ValueError, match="99 captions of other images"):
        r_precision.r_precision(
            np.ones((1, 2)), np.array([0]), np.ones((50, 2)), np.arange(50) // 10
        )


def test_caption_pairs_visit_every_image_before_repeating():
    counts = np.array([1, 3, 5, 2])
    images, captions = sample_caption_pairs(counts, 10, seed=4)
    assert sorted(images[:4]) == [0, 1, 2, 3] and sorted(images[4:8]) == [0, 1, 2, 3]
    assert np.all(captions < counts[images]) and np.all(captions >= 0)
    again = sample_caption_pairs(counts, 10, seed=4)
    np.testing.assert_array_equal(again[0], images)
    np.testing.assert_array_equal(again[1], captions)


def test_contrastive_loss_matches_hand_computed_values():
    assert float(r_precision.symmetric_contrastive_loss(tf.zeros([4, 4]))) == pytest.approx(
        math.log(4)
    )
    logits = tf.constant([[2.0, 0.0], [1.0, 3.0]])
    rows = -np.log(np.exp(2) / (np.exp(2) + 1)) - np.log(np.exp(3) / (np.exp(3) + np.exp(1)))
    columns = -np.log(np.exp(2) / (np.exp(2) + np.exp(1))) - np.log(np.exp(3) / (np.exp(3) + 1))
    expected = (rows / 2 + columns / 2) / 2
    assert float(r_precision.symmetric_contrastive_loss(logits)) == pytest.approx(expected)


def test_perfect_images_rank_far_above_noise_which_is_at_chance(matcher, splits):
    images, captions, embeddings = splits["test"]
    image_index, caption_index = sample_caption_pairs(np.full(64, 10), 128, seed=0)
    pool = {
        "true_captions": image_index * 10 + caption_index,
        "caption_codes": matcher.encode_captions(embeddings.reshape(-1, embeddings.shape[-1])),
        "caption_owners": np.repeat(np.arange(64), 10),
        "caption_keys": captions.reshape(-1).astype(str),
        "repeats": 3,
    }
    noise = np.random.default_rng(2).integers(0, 256, (128, 16, 16, 3), dtype=np.uint8)
    perfect = r_precision.r_precision(matcher.encode_images(images[image_index]), **pool)
    random = r_precision.r_precision(matcher.encode_images(noise), **pool)
    # A few seconds of training at 16x16 reach about 16% (32x32 and the default budget: 32%).
    assert perfect["top1_mean"] > 0.1
    assert random["top1_mean"] < 0.04
    assert perfect["top1_mean"] > 4 * random["top1_mean"]


def test_the_matcher_is_cached_and_reloads_with_its_config(matcher, splits, isolated_cache):
    images, _, embeddings = splits["train"]
    files = list((isolated_cache / "caption_matchers").glob("tiny-flowers-16px-*.keras"))
    assert len(files) == 1
    reloaded = r_precision.load_caption_matcher(
        "tiny-flowers-16px",
        captioned(*splits["train"]),
        r_precision.MatcherSettings(**TINY_MATCHER),
    )
    assert reloaded.get_config() == matcher.get_config()
    np.testing.assert_allclose(
        reloaded.encode_images(images[:4]), matcher.encode_images(images[:4]), atol=1e-6
    )
    np.testing.assert_allclose(
        reloaded.encode_captions(embeddings[:4, 0]),
        matcher.encode_captions(embeddings[:4, 0]),
        atol=1e-6,
    )
    assert float(reloaded.log_scale.numpy()) == float(matcher.log_scale.numpy())


def test_the_image_encoder_is_nhwc_under_a_channels_first_keras_default(channels_first_default):
    matcher = r_precision.CaptionMatcher(16, 8, projection_dim=4, filters=4)
    assert channels_first_default(matcher) == {"channels_last"}
    assert matcher.encode_images(np.zeros((2, 16, 16, 3), np.uint8)).shape == (2, 4)
