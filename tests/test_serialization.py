"""Every Keras-serializable class of the package survives a JSON config round trip (keras-hub's
`run_serialization_test`): `from_config(get_config())` gives the same config, and so does
`keras.saving` (de)serialization through JSON text. The config must also name every constructor
argument: a forgotten one would round-trip silently, as its default."""

import inspect
import json

import keras
import pytest

import t2i_keras
from t2i_keras.metrics.attributes import AttributeClassifier
from t2i_keras.metrics.inception import FIDInceptionV3, LegacyBilinearResize
from t2i_keras.metrics.r_precision import CaptionMatcher
from t2i_keras.models import fusion
from t2i_keras.models.conditioning import EmbeddingStandardization
from t2i_keras.models.fused_generator import FusedGenerator
from t2i_keras.models.residual_discriminator import ResidualDiscriminator
from t2i_keras.text.anchors import NearestCaptionSnap
from t2i_keras.text.encoder import TextEncoder
from tests.gan_helpers import tiny_discriminator, tiny_gan, tiny_generator

# Non-default values wherever cheap, so that an argument get_config forgets shows up.
FACTORIES = {
    "EmbeddingStandardization": lambda encoder: EmbeddingStandardization(
        epsilon=1e-3, mode="centre"
    ),
    "Generator": lambda encoder: tiny_generator(conditioning_augmentation=True, seed=3),
    "Discriminator": lambda encoder: tiny_discriminator(
        spectral_norm=True,
        conditioning="projection",
        embedding_normalization="centre",
        unconditional_output=True,
    ),
    "FusedGenerator": lambda encoder: FusedGenerator(
        16, embedding_dim=8, z_dim=4, filters=2, embedding_normalization="whiten", seed=5
    ),
    "ResidualDiscriminator": lambda encoder: ResidualDiscriminator(
        16, embedding_dim=8, filters=2, embedding_normalization="whiten"
    ),
    "TextAffine": lambda encoder: fusion.TextAffine(3),
    "DeepFusion": lambda encoder: fusion.DeepFusion(3),
    "FusedUpBlock": lambda encoder: fusion.FusedUpBlock(3, 2),
    "ResidualDownBlock": lambda encoder: fusion.ResidualDownBlock(3, 4),
    "TextToImageGAN": lambda encoder: tiny_gan(
        loss="hinge",
        gan_int_beta=0.3,
        gan_int_weight=0.5,
        ma_gp_weight=2.0,
        kl_weight=0.25,
        ema_decay=0.9,
        generator_kwargs={"conditioning_augmentation": True},
    ),
    "TextEncoder": lambda encoder: TextEncoder(encoder.handle, name="captions"),
    "NearestCaptionSnap": lambda encoder: NearestCaptionSnap(0.8, 5, embedding_dim=6),
    "AttributeClassifier": lambda encoder: AttributeClassifier(16, filters=4, seed=2),
    "CaptionMatcher": lambda encoder: CaptionMatcher(16, 8, 4, 4, temperature=0.1, seed=2),
    "LegacyBilinearResize": lambda encoder: LegacyBilinearResize(64),
    "FIDInceptionV3": lambda encoder: FIDInceptionV3(),
}


def registered_names():
    t2i_keras.register_serializables()
    return sorted(
        name.split(">", 1)[1]
        for name in keras.saving.get_custom_objects()
        if name.startswith("t2i_keras>")
    )


def config_json(obj) -> str:
    return json.dumps(obj.get_config(), sort_keys=True, indent=1)


def test_every_registered_class_has_a_round_trip_case():
    assert registered_names() == sorted(FACTORIES)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_config_round_trips_through_json(name, text_encoder):
    obj = FACTORIES[name](text_encoder)
    arguments = set(inspect.signature(type(obj).__init__).parameters) - {"self", "kwargs"}
    assert arguments <= set(obj.get_config()), arguments - set(obj.get_config())
    original = config_json(obj)
    assert config_json(type(obj).from_config(json.loads(original))) == original
    serialized = json.dumps(keras.saving.serialize_keras_object(obj))
    assert config_json(keras.saving.deserialize_keras_object(json.loads(serialized))) == original
