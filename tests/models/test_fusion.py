"""Deep-fusion layers: identity at initialization, text-driven modulation, config round trips."""

import json

import keras
import numpy as np
import pytest

from t2i_keras.models import fusion


def _features_and_condition(seed=0, batch=2, size=4, channels=3, condition_dim=5):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, size, size, channels)).astype(np.float32),
        rng.normal(size=(batch, condition_dim)).astype(np.float32),
    )


def test_upsample_nearest_matches_keras_upsampling():
    features, _ = _features_and_condition(channels=2)
    expected = keras.layers.UpSampling2D(2, interpolation="nearest")(features)
    np.testing.assert_array_equal(np.asarray(fusion.upsample_nearest(features)), expected)


def test_text_affine_starts_as_the_identity_and_then_follows_the_condition():
    features, condition = _features_and_condition()
    affine = fusion.TextAffine(3)
    np.testing.assert_allclose(np.asarray(affine([features, condition])), features, atol=1e-6)
    affine.gamma_out.kernel.assign(np.ones_like(affine.gamma_out.kernel.numpy()))
    affine.beta_out.kernel.assign(np.ones_like(affine.beta_out.kernel.numpy()))
    a = np.asarray(affine([features, condition]))
    b = np.asarray(affine([features, condition + 1.0]))
    assert not np.allclose(a, features) and not np.allclose(a, b)


def test_residual_down_block_is_its_shortcut_until_gamma_grows():
    features, _ = _features_and_condition(size=8, channels=3)
    block = fusion.ResidualDownBlock(3, 6)
    out = np.asarray(block(features))
    shortcut = np.asarray(block.pool(block.shortcut(features)))
    np.testing.assert_allclose(out, shortcut, atol=1e-6)
    block.gamma.assign(1.0)
    assert not np.allclose(np.asarray(block(features)), shortcut)
    assert out.shape == (2, 4, 4, 6)


@pytest.mark.parametrize(
    "make, takes_condition",
    [
        (lambda: fusion.TextAffine(3), True),
        (lambda: fusion.DeepFusion(3), True),
        (lambda: fusion.FusedUpBlock(3, 2), True),
        (lambda: fusion.ResidualDownBlock(3, 4), False),
    ],
    ids=["TextAffine", "DeepFusion", "FusedUpBlock", "ResidualDownBlock"],
)
def test_config_json_round_trip_and_keras_file(make, takes_condition, tmp_path):
    layer = make()
    features, condition = _features_and_condition(size=8)
    args = [features, condition] if takes_condition else features
    expected = np.asarray(layer(args))
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    feature_input = keras.Input(features.shape[1:])
    if takes_condition:
        condition_input = keras.Input(condition.shape[1:])
        model_inputs = [feature_input, condition_input]
        model = keras.Model(model_inputs, layer(model_inputs))
    else:
        model = keras.Model(feature_input, layer(feature_input))
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(restored(args)), expected, atol=1e-6)
