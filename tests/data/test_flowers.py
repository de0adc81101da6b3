"""Procedural captioned flowers: shapes, determinism, disjoint splits, captions that tell the truth,
and the petal-colour estimator."""

import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.data import flowers


@pytest.fixture(scope="module")
def train_examples():
    return flowers.generate_examples(300, image_size=32, seed=0, split="train")


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_shapes_and_dtypes_at_each_resolution(size):
    ex = flowers.generate_examples(3, image_size=size, seed=0)
    assert ex["image"].shape == (3, size, size, 3) and ex["image"].dtype == np.uint8
    assert ex["captions"].shape == (3, 10)
    for key in flowers.ATTRIBUTE_KEYS + ("class_id",):
        assert ex[key].shape == (3,) and ex[key].dtype == np.int32
    assert ex["id"].shape == (3,)


def test_same_seed_same_bytes_other_seed_other_images():
    a = flowers.generate_examples(20, 32, seed=3)
    b = flowers.generate_examples(20, 32, seed=3)
    c = flowers.generate_examples(20, 32, seed=4)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["captions"], b["captions"])
    assert not np.array_equal(a["image"], c["image"])


def test_train_and_test_splits_are_disjoint():
    train = flowers.generate_examples(200, 32, seed=0, split="train")
    test = flowers.generate_examples(200, 32, seed=0, split="test")
    assert not set(train["id"]) & set(test["id"])
    train_bytes = {img.tobytes() for img in train["image"]}
    assert not any(img.tobytes() in train_bytes for img in test["image"])


def test_no_two_images_alike(train_examples):
    images = train_examples["image"]
    assert len({img.tobytes() for img in images}) == len(images)
    # Even flowers with identical attributes differ (position, rotation, shading, noise).
    keys = np.stack([train_examples[k] for k in flowers.ATTRIBUTE_KEYS], axis=1)
    _, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
    assert len(images) > len(first), "expected some repeated attribute tuples in 300 flowers"


def test_every_caption_agrees_with_its_image(train_examples):
    for i, captions in enumerate(train_examples["captions"]):
        truth = {
            "petal_colour": flowers.PETAL_COLOURS[train_examples["petal_colour"][i]],
            "centre_colour": flowers.CENTRE_COLOURS[train_examples["centre_colour"][i]],
            "petal_count": int(train_examples["petal_count"][i]),
            "petal_shape": flowers.PETAL_SHAPES[train_examples["petal_shape"][i]],
        }
        for caption in captions:
            named = flowers.caption_attributes(caption)
            assert "petal_colour" in named, caption  # every caption names the petal colour
            for key, value in named.items():
                assert value == truth[key], (
                    f"{caption!r} says {key}={value}, image has {truth[key]}"
                )


def test_caption_variety(train_examples):
    captions = train_examples["captions"]
    assert len(flowers.TEMPLATES) >= 20
    assert all(len(set(row)) == 10 for row in captions)
    assert len(set(captions.reshape(-1))) > 0.6 * captions.size
    # Partial descriptions: some captions omit centre, count or shape.
    named = [flowers.caption_attributes(c) for c in captions.reshape(-1)[:500]]
    for key in ("centre_colour", "petal_count", "petal_shape"):
        assert 0.1 < np.mean([key in n for n in named]) < 0.9, key
    assert any("an ivory" in c or "an orange" in c or "an azure" in c for c in captions.reshape(-1))
    assert not any(" a ivory" in c or " a orange" in c for c in captions.reshape(-1))


def test_caption_parser_attributes_colours_to_petals_or_centre():
    assert flowers.caption_attributes("white petals surround a golden pistil") == {
        "petal_colour": "white",
        "centre_colour": "yellow",
    }
    assert flowers.caption_attributes("this flower has 5 narrow lime green petals") == {
        "petal_count": 5,
        "petal_shape": "thin",
        "petal_colour": "green",
    }
    with pytest.raises(ValueError, match="several petal_colour"):
        flowers.caption_attributes("red and blue petals")


def test_all_vocabulary_appears(train_examples):
    for key, names in (
        ("petal_colour", flowers.PETAL_COLOURS),
        ("centre_colour", flowers.CENTRE_COLOURS),
        ("petal_shape", flowers.PETAL_SHAPES),
        ("background", flowers.BACKGROUNDS),
    ):
        assert set(train_examples[key]) == set(range(len(names))), key
    assert set(train_examples["petal_count"]) == set(flowers.PETAL_COUNTS)
    np.testing.assert_array_equal(train_examples["class_id"], train_examples["petal_colour"])


def test_petal_colour_estimator_on_real_images():
    ex = flowers.generate_examples(400, 64, seed=5, split="test")
    estimated = flowers.estimate_petal_colour(ex["image"])
    assert np.mean(estimated == ex["petal_colour"]) >= 0.95
    as_float = ex["image"][:50].astype(np.float32) / 127.5 - 1
    np.testing.assert_array_equal(flowers.estimate_petal_colour(as_float), estimated[:50])


def test_tf_data_pipeline_element_spec():
    ds = flowers.flowers_dataset(4, image_size=32, seed=0)
    spec = ds.element_spec
    assert spec["image"].shape == (32, 32, 3) and spec["image"].dtype == tf.uint8
    assert spec["captions"].shape == (10,) and spec["captions"].dtype == tf.string
    assert spec["petal_colour"].dtype == tf.int32
    first = next(iter(ds))
    assert first["id"].numpy().decode().startswith("train-s0-")


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="at least 16"):
        flowers.generate_examples(1, image_size=8)
