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
