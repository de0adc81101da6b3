"""Within-caption diversity: known distances, collapse scores zero, real-image matching."""

import numpy as np

from t2i_keras.metrics import diversity


def test_mean_pairwise_distance_of_known_points():
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])
    # Pairs: 5, 8, 5 -> mean 6.
    assert abs(diversity.mean_pairwise_distance(points) - 6.0) < 1e-9


def test_a_collapsed_generator_scores_zero_and_a_data_like_one_about_one():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(10, 6, 32))
    collapsed = np.repeat(rng.normal(size=(10, 1, 32)), 6, axis=1)
    data_like = rng.normal(size=(10, 6, 32))
    assert diversity.diversity(collapsed, real)["ratio"] < 1e-6
    assert 0.9 < diversity.diversity(data_like, real)["ratio"] < 1.1


def test_real_images_are_matched_on_the_named_attributes():
    truth = {
        "petal_colour": np.array([0, 1, 1, 1, 2, 0]),
        "centre_colour": np.array([0, 0, 1, 1, 0, 1]),
    }
    targets = {"petal_colour": np.array([1, 0]), "centre_colour": np.array([1, -1])}
    chosen = diversity.matching_real_images(targets, truth, 6, 2, np.random.default_rng(0))
    assert set(chosen[0]) == {2, 3}  # petal 1 with centre 1
    assert set(chosen[1]) == {0, 5}  # petal 0, any centre


def test_caption_diversity_runs_the_generator_and_the_features():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 255, (8, 4, 4, 3), dtype=np.uint8)

    def generate(captions, per_caption, seed):
        return np.repeat(real[: len(captions), None], per_caption, axis=1)  # ignores its noise

    def featurize(images):
        return images.reshape(len(images), -1).astype(np.float64)

    index = np.array([[0, 1, 2], [3, 4, 5]])
    result = diversity.caption_diversity(generate, featurize, ["a", "b"], real, index)
    assert result["generated"] == 0.0 and result["real"] > 0 and result["captions"] == 2
