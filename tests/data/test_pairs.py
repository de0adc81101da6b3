"""The random parts of a GAN-INT-CLS step, drawn in the pipeline: wrong images from another class,
GAN-INT partners, noise; all seeded and per example."""

import numpy as np
import tensorflow as tf

from t2i_keras.data.pairs import add_gan_pairs, interpolation_partners, sample_wrong_indices


def test_wrong_images_always_come_from_another_class():
    class_ids = tf.constant([0, 0, 1, 2, 2, 2, 3, 1])
    chosen = set()
    for step in range(20):
        indices, mask = sample_wrong_indices(class_ids, tf.constant([0, step]))
        indices, mask = indices.numpy(), mask.numpy()
        assert np.all(class_ids.numpy()[indices] != class_ids.numpy())
        np.testing.assert_array_equal(mask, np.ones(8))
        chosen.update(zip(range(8), indices))
    assert len(chosen) > 20, "wrong images must be drawn at random, not a fixed shift"


def test_rows_without_another_class_are_masked():
    _, mask = sample_wrong_indices(tf.constant([5, 5, 5]), tf.constant([0, 0]))
    np.testing.assert_array_equal(mask.numpy(), [0, 0, 0])
    _, mask = sample_wrong_indices(tf.constant([5, 5, 7]), tf.constant([0, 0]))
    np.testing.assert_array_equal(mask.numpy(), [1, 1, 1])


def test_gan_int_partners_are_a_random_permutation():
    orders = [interpolation_partners(6, tf.constant([1, s])).numpy() for s in range(5)]
    for order in orders:
        assert sorted(order) == list(range(6))
    assert len({tuple(o) for o in orders}) > 1


def test_add_gan_pairs_is_seeded_and_gathers_from_the_batch():
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.uniform(-1, 1, (6, 4, 4, 3)), tf.float32),
        "embedding": tf.constant(rng.normal(size=(6, 5)), tf.float32),
        "class_id": tf.constant([0, 0, 1, 1, 2, 2]),
    }
    a = add_gan_pairs(batch, tf.constant([3, 4]), z_dim=7)
    b = add_gan_pairs(batch, tf.constant([3, 4]), z_dim=7)
    c = add_gan_pairs(batch, tf.constant([3, 5]), z_dim=7)
    for key in ("wrong_image", "mix_embedding", "noise", "twin_noise"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["noise"], c["noise"])
    assert a["noise"].shape == (6, 2, 7)
    assert a["twin_noise"].shape == (6, 7)
    assert not np.allclose(a["twin_noise"], a["noise"][:, 0])
    assert abs(float(tf.math.reduce_std(a["noise"])) - 1.0) < 0.3
    images = batch["image"].numpy().reshape(6, -1)
    for row, wrong in enumerate(a["wrong_image"].numpy().reshape(6, -1)):
        source = int(np.argmin(np.abs(images - wrong).sum(1)))
        assert batch["class_id"].numpy()[source] != batch["class_id"].numpy()[row]
    embeddings = batch["embedding"].numpy()
    partners = [int(np.argmin(np.abs(embeddings - m).sum(1))) for m in a["mix_embedding"].numpy()]
    assert sorted(partners) == list(range(6))


def test_embedding_perturbation_moves_by_the_set_relative_distance_and_keeps_the_norm():
    from t2i_keras.data.pairs import perturb_embeddings

    rng = np.random.default_rng(0)
    e = rng.normal(size=(64, 32)).astype(np.float32)
    moved = perturb_embeddings(tf.constant(e), 0.2, tf.constant([3, 4])).numpy()
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), np.linalg.norm(e, axis=1), rtol=1e-5)
    cosine = np.sum(moved * e, axis=1) / np.linalg.norm(moved, axis=1) / np.linalg.norm(e, axis=1)
    # A random direction at relative distance 0.2 in 32 dimensions: cos ≈ 1/sqrt(1 + 0.04).
    assert 0.95 < cosine.min() and cosine.max() < 0.9999
    again = perturb_embeddings(tf.constant(e), 0.2, tf.constant([3, 4])).numpy()
    np.testing.assert_array_equal(moved, again)


def test_embedding_noise_changes_only_the_embeddings():
    batch = {
        "image": tf.zeros((6, 4, 4, 3)),
        "embedding": tf.random.stateless_normal((6, 16), [0, 1]),
        "class_id": tf.range(6),
    }
    plain = add_gan_pairs(batch, tf.constant([0, 9]), 7)
    noisy = add_gan_pairs(batch, tf.constant([0, 9]), 7, embedding_noise=0.3)
    for key in ("wrong_image", "wrong_mask", "noise"):
        np.testing.assert_array_equal(plain[key].numpy(), noisy[key].numpy())
    np_plain, np_noisy = plain["embedding"].numpy(), noisy["embedding"].numpy()
    assert not np.allclose(np_plain, np_noisy)
    np.testing.assert_array_equal(np_plain, batch["embedding"].numpy())
