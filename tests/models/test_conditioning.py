"""EmbeddingStandardization: identity until set, then zero mean and unit spread per dimension."""

import numpy as np
import pytest

from t2i_keras.models.conditioning import EmbeddingStandardization


def test_identity_until_statistics_are_set_then_standardizes():
    layer = EmbeddingStandardization()
    x = np.array([[1.0, 2.0], [3.0, 6.0]], np.float32)
    np.testing.assert_allclose(np.asarray(layer(x)), x)
    layer.set_statistics(x)
    np.testing.assert_allclose(np.asarray(layer(x)), [[-1, -1], [1, 1]], atol=1e-3)
    assert EmbeddingStandardization.from_config(layer.get_config()).epsilon == layer.epsilon


def test_one_embedding_is_not_enough():
    with pytest.raises(ValueError, match="at least two"):
        EmbeddingStandardization().set_statistics(np.ones((1, 4)))


def test_centre_mode_keeps_the_encoders_angles_and_distances_up_to_one_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) * np.array([5.0, 1.0, 0.1, 0.1, 2.0, 0.01]) + 3.0
    centre = EmbeddingStandardization(mode="centre")
    centre.set_statistics(x)
    y = np.asarray(centre(x.astype(np.float32)))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.mean(y.var(axis=0)), 1.0, rtol=1e-3)
    # Distances between any two captions scale by one common factor: the geometry is kept...
    d_in = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(50, 1)]
    d_out = np.linalg.norm(y[:, None] - y[None], axis=-1)[np.triu_indices(50, 1)]
    np.testing.assert_allclose(d_out / d_in, (d_out / d_in)[0], rtol=1e-3)
    # ... which per-dimension whitening does not keep.
    whiten = EmbeddingStandardization()
    whiten.set_statistics(x)
    w = np.asarray(whiten(x.astype(np.float32)))
    d_w = np.linalg.norm(w[:, None] - w[None], axis=-1)[np.triu_indices(50, 1)]
    assert np.std(d_w / d_in) > 0.1


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="mode must be one of"):
        EmbeddingStandardization(mode="pca")
