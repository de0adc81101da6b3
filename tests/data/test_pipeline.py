"""The training input pipeline: element spec, value ranges, caption sampling, determinism."""

import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.data.pipeline import training_dataset


def tiny_data(n=6, captions=3, dim=4, size=8):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    # Embedding j of image i is the constant 10*i + j, so a batch tells which caption was used.
    embeddings = (10 * np.arange(n)[:, None, None] + np.arange(captions)[None, :, None]) * np.ones(
        (1, 1, dim)
    )
    return images, embeddings.astype(np.float32), np.arange(n) % 2


def test_element_spec_and_ranges():
    images, embeddings, classes = tiny_data()
    ds = training_dataset(images, embeddings, classes, batch_size=4, seed=0)
    spec = ds.element_spec
    assert spec["image"].shape.as_list() == [4, 8, 8, 3] and spec["image"].dtype == tf.float32
    assert spec["embedding"].shape.as_list() == [4, 4]
    assert spec["class_id"].dtype == tf.int32
    batch = next(iter(ds))
    assert -1.0 <= batch["image"].numpy().min() and batch["image"].numpy().max() <= 1.0


def test_each_example_pairs_an_image_with_one_of_its_own_captions():
    images, embeddings, classes = tiny_data()
    ds = training_dataset(images, embeddings, classes, batch_size=3, seed=1, flip=False)
    seen_captions = set()
    for batch in ds.take(20):
        for image, embedding, class_id in zip(
            batch["image"].numpy(), batch["embedding"].numpy(), batch["class_id"].numpy()
        ):
            index = int(embedding[0] // 10)
            seen_captions.add(int(embedding[0] % 10))
            np.testing.assert_allclose(image, images[index] / 127.5 - 1.0, atol=1e-6)
            assert class_id == classes[index]
    assert seen_captions == {0, 1, 2}


def test_flips_mirror_images_and_are_deterministic_by_seed():
    images, embeddings, classes = tiny_data()
    batches = lambda seed: [  # noqa: E731
        b["image"].numpy() for b in training_dataset(images, embeddings, classes, 3, seed).take(4)
    ]
    np.testing.assert_array_equal(np.stack(batches(5)), np.stack(batches(5)))
    assert not np.array_equal(np.stack(batches(5)), np.stack(batches(6)))
    mirrored = images[:, :, ::-1] / 127.5 - 1.0
    first = next(iter(training_dataset(images, embeddings, classes, 6, seed=2)))
    flipped = [any(np.allclose(img, m) for m in mirrored) for img in first["image"].numpy()]
    assert 0 < sum(flipped) < 6


def test_too_few_images_for_a_batch_is_a_clear_error():
    images, embeddings, classes = tiny_data(n=3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        training_dataset(images, embeddings, classes, batch_size=4)
    with pytest.raises(ValueError, match="same length"):
        training_dataset(images, embeddings[:2], classes, batch_size=2)
