"""The attribute classifier: caption targets, accuracies and chance on hand-made predictions, a
perfect generator at the ceiling and a noise generator at chance, the cache."""

import keras
import numpy as np
import pytest

from t2i_keras.data import flowers
from t2i_keras.metrics import attributes

# A few seconds of training at 16x16: petal colour is learnt (about 90% on held-out images), the
# finer attributes are not, which is all these tests need. test_evaluation reuses it (cached).
TINY_CLASSIFIER = {"image_size": 16, "num_train": 2000, "epochs": 3, "filters": 16}


@pytest.fixture(scope="module")
def classifier(isolated_cache):
    return attributes.load_attribute_classifier(attributes.ClassifierSettings(**TINY_CLASSIFIER))


@pytest.fixture(scope="module")
def held_out():
    return flowers.generate_examples(240, 16, seed=0, split="test")


def test_caption_targets_hold_the_named_labels_and_minus_one_elsewhere():
    targets = attributes.caption_targets(
        [
            "a flower with 5 pink petals",
            "this flower has thin petals which are blue, and a brown centre",
            "this is a white flower",
        ]
    )
    np.testing.assert_array_equal(targets["petal_colour"], [6, 4, 7])
    np.testing.assert_array_equal(targets["centre_colour"], [-1, 1, -1])
    np.testing.assert_array_equal(targets["petal_count"], [2, -1, -1])  # counts start at 3
    np.testing.assert_array_equal(targets["petal_shape"], [-1, 2, -1])


def test_ground_truth_labels_index_the_attribute_values():
    examples = flowers.generate_examples(20, 16, seed=3)
    labels = attributes.attribute_labels(examples)
    for name, values in attributes.ATTRIBUTE_VALUES.items():
        assert labels[name].dtype == np.int32
        assert labels[name].min() >= 0 and labels[name].max() < len(values)
    np.testing.assert_array_equal(labels["petal_count"] + 3, examples["petal_count"])


def test_accuracy_and_chance_on_hand_made_predictions():
    targets = {
        "petal_colour": np.array([0, 1, 2, 3]),
        "centre_colour": np.array([1, -1, -1, 2]),
        "petal_count": np.array([-1, -1, -1, -1]),
        "petal_shape": np.array([-1, 0, -1, -1]),
    }
    predicted = {
        "petal_colour": np.array([0, 1, 2, 0]),
        "centre_colour": np.array([1, 3, 3, 0]),
        "petal_count": np.array([0, 0, 0, 0]),
        "petal_shape": np.array([2, 0, 1, 1]),
    }
    accuracy = attributes.attribute_accuracy(predicted, targets)
    # Image 0 is right on both its attributes, 1 on both, 2 on its one, 3 on neither.
    assert accuracy == {
        "petal_colour": 0.75,
        "centre_colour": 0.5,
        "petal_shape": 1.0,
        "all_named": 0.75,
    }
    chance = attributes.chance_accuracy(targets)
    assert chance["petal_colour"] == 1 / 8 and chance["petal_shape"] == 1 / 3
    assert "petal_count" not in chance
    assert chance["all_named"] == pytest.approx((1 / 32 + 1 / 24 + 1 / 8 + 1 / 32) / 4)
    assert attributes.named_counts(targets) == {
        "petal_colour": 4,
        "centre_colour": 2,
        "petal_shape": 1,
        "all_named": 4,
    }


def test_a_perfect_generator_is_at_the_ceiling_and_noise_near_chance(classifier, held_out):
    # One distinct caption per held-out image (short captions recur across images); the perfect
    # generator draws the image it was written for.
    captions = []
    for i, image_captions in enumerate(held_out["captions"]):
        captions.append(next(str(c) for c in np.roll(image_captions, -i) if c not in captions))
    owner = {caption: i for i, caption in enumerate(captions)}

    def perfect(batch):
        return held_out["image"][[owner[c] for c in batch]]

    def noise(batch):
        return np.random.default_rng(1).integers(0, 256, (len(batch), 16, 16, 3), dtype=np.uint8)

    targets = attributes.caption_targets(captions)
    ceiling = attributes.attribute_accuracy(
        attributes.predict_attributes(classifier, held_out["image"]), targets
    )
    scores = {
        name: attributes.attribute_accuracy(
            attributes.predict_attributes(classifier, generate(captions)), targets
        )
        for name, generate in (("perfect", perfect), ("noise", noise))
    }
    chance = attributes.chance_accuracy(targets)
    assert scores["perfect"] == ceiling
    assert ceiling["petal_colour"] > 0.8
    for name, value in scores["noise"].items():
        assert abs(value - chance[name]) < 0.12, (name, value, chance[name])
    assert scores["perfect"]["petal_colour"] > scores["noise"]["petal_colour"] + 0.6


def test_the_classifier_is_cached_and_reloads_with_its_config(classifier, held_out, isolated_cache):
    files = list((isolated_cache / "attribute_classifiers").glob("flowers-s0-16px-*.keras"))
    assert len(files) == 1 and f"v{attributes.FORMAT_VERSION}" in files[0].name
    reloaded = attributes.load_attribute_classifier(
        attributes.ClassifierSettings(**TINY_CLASSIFIER)
    )
    assert reloaded is not classifier and reloaded.get_config() == classifier.get_config()
    probabilities = classifier(held_out["image"][:8])
    np.testing.assert_allclose(
        reloaded(held_out["image"][:8])["petal_colour"], probabilities["petal_colour"], atol=1e-6
    )


def test_the_network_stays_float32_under_a_mixed_policy():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = attributes.AttributeClassifier(16, filters=4)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert {layer.dtype_policy.compute_dtype for layer in model.layers[1:]} == {"float32"}


def test_bad_inputs_are_refused_with_a_reason(classifier):
    with pytest.raises(ValueError, match="16x16"):
        attributes.predict_attributes(classifier, np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        attributes.predict_attributes(classifier, np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="power of two"):
        attributes.AttributeClassifier(24)
