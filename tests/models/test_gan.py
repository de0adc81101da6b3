"""TextToImageGAN: the train step's pieces (wrong images, GAN-INT, EMA), fit, options, saving."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.models import losses
from t2i_keras.models.fused_generator import FusedGenerator
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.models.residual_discriminator import ResidualDiscriminator
from tests.gan_helpers import (
    EMBEDDING_DIM,
    Z_DIM,
    compile_tiny,
    inputs,
    tiny_batches,
    tiny_discriminator,
    tiny_gan,
)


def weights_of(model):
    return [np.array(w) for w in model.weights]


def changed(before, after):
    return any(not np.allclose(a, b) for a, b in zip(before, after))


def test_one_fit_step_trains_both_networks_and_moves_the_ema():
    gan = compile_tiny(tiny_gan())
    generator, discriminator, ema = (
        weights_of(gan.generator),
        weights_of(gan.discriminator),
        weights_of(gan.ema_generator),
    )
    history = gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0).history
    assert changed(generator, weights_of(gan.generator))
    assert changed(discriminator, weights_of(gan.discriminator))
    assert changed(ema, weights_of(gan.ema_generator))
    assert set(history) == {"d_loss", "g_loss", "d_real", "d_wrong", "d_fake"}
    assert all(np.isfinite(v[0]) for v in history.values())


def test_ema_is_the_moving_average_and_copies_batch_norm_statistics():
    gan = compile_tiny(tiny_gan(ema_decay=0.25))
    ema_before = weights_of(gan.ema_generator)
    gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0)
    for ema0, ema1, weight in zip(ema_before, gan.ema_generator.weights, gan.generator.weights):
        w = np.array(weight)
        expected = 0.25 * ema0 + 0.75 * w if weight.trainable else w
        np.testing.assert_allclose(np.array(ema1), expected, rtol=1e-5, atol=1e-6)


def test_wrong_term_is_masked_when_the_batch_has_one_class():
    gan = compile_tiny(tiny_gan())
    history = gan.fit(tiny_batches(classes=1), steps_per_epoch=1, epochs=1, verbose=0).history
    assert history["d_wrong"] == [0.0]


def one_batch(**kwargs):
    return {k: v.numpy() for k, v in next(iter(tiny_batches(**kwargs))).items()}


def sgd_gan(d_rate, g_rate, **kwargs):
    """A tiny GAN whose updates are exactly -rate x gradient (a rate of 0 freezes a network)."""
    gan = tiny_gan(**kwargs)
    gan.compile(d_optimizer=keras.optimizers.SGD(d_rate), g_optimizer=keras.optimizers.SGD(g_rate))
    return gan


def update(gan, network, batch):
    """One train_step on `batch`: how far each trainable weight of `network` moved; the logs."""
    variables = getattr(gan, network).trainable_variables
    before = [np.array(v) for v in variables]
    logs = gan.train_step({k: tf.constant(v) for k, v in batch.items()})
    return [np.array(v) - b for v, b in zip(variables, before)], logs


def test_the_gan_int_term_adds_its_own_gradient_to_the_generator_update():
    batch = one_batch()
    with_int, without, reference = (
        sgd_gan(0.0, 1.0, gan_int_weight=w, gan_int_beta=0.25) for w in (1.0, 0.0, 1.0)
    )
    for gan in (without, reference):
        for weight, value in zip(gan.weights, with_int.weights, strict=True):
            weight.assign(value)
    delta_with, _ = update(with_int, "generator", batch)
    delta_without, _ = update(without, "generator", batch)
    # Reed §4.3: the generator is also scored on beta·t1 + (1 - beta)·t2 with its own noise.
    g = reference.generator
    with tf.GradientTape() as tape:
        mixed = 0.25 * batch["embedding"] + 0.75 * batch["mix_embedding"]
        images, _ = g.generate(tf.constant(mixed), tf.constant(batch["noise"][:, 1]), training=True)
        logits = reference.discriminator([images, tf.constant(mixed)], training=True)
        term = tf.reduce_mean(losses.bce_generator_loss(logits))
    gradients = tape.gradient(term, g.trainable_variables)
    assert max(np.abs(d).max() for d in delta_without) > 1e-3
    for a, b, gradient in zip(delta_with, delta_without, gradients, strict=True):
        np.testing.assert_allclose(a - b, -np.array(gradient), atol=1e-6, rtol=1e-4)
    assert max(np.abs(a - b).max() for a, b in zip(delta_with, delta_without)) > 1e-3


def test_masked_wrong_pairs_do_not_reach_the_discriminator_loss():
    # The quickstart's discriminator (spectral norm, no batch norm): with batch norm, a masked
    # row still enters the wrong images' batch statistics.
    options = {"spectral_norm": True, "conditioning": "projection"}
    batch = one_batch()
    batch["wrong_mask"][:3] = 0.0
    garbage = np.random.default_rng(9).uniform(-1, 1, batch["wrong_image"][:1].shape)
    masked_changed = {**batch, "wrong_image": batch["wrong_image"].copy()}
    masked_changed["wrong_image"][:3] = garbage
    unmasked_changed = {**batch, "wrong_image": batch["wrong_image"].copy()}
    unmasked_changed["wrong_image"][3:4] = garbage
    results, initial = [], None
    for variant in (batch, masked_changed, unmasked_changed):
        gan = sgd_gan(1.0, 0.0, loss="hinge", discriminator_kwargs=options)
        initial = initial or [np.array(w) for w in gan.weights]
        for weight, value in zip(gan.weights, initial, strict=True):
            weight.assign(value)
        results.append(update(gan, "discriminator", variant))
    (base, base_logs), (masked, masked_logs), (unmasked, _) = results
    for a, b in zip(base, masked, strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(base_logs["d_loss"]) == float(masked_logs["d_loss"])
    assert max(np.abs(a - b).max() for a, b in zip(base, unmasked)) > 1e-4


@pytest.mark.parametrize("jit_compile", [False, True])
def test_train_step_with_and_without_xla(jit_compile):
    gan = compile_tiny(tiny_gan(), jit_compile=jit_compile)
    history = gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0).history
    assert gan.jit_compile is jit_compile  # Keras turns XLA off, with a warning, if it cannot
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])


def every_dcgan_option():
    return tiny_gan(
        loss="hinge",
        ma_gp_weight=2.0,
        mode_seeking_weight=1.0,
        generator_kwargs={"conditioning_augmentation": True},
        discriminator_kwargs={
            "spectral_norm": True,
            "conditioning": "projection",
            "unconditional_output": True,
        },
    )


def dfgan_with_magp():
    return TextToImageGAN(
        FusedGenerator(image_size=16, embedding_dim=EMBEDDING_DIM, z_dim=Z_DIM, filters=2, seed=0),
        ResidualDiscriminator(image_size=16, embedding_dim=EMBEDDING_DIM, filters=2),
        loss="hinge",
        ma_gp_weight=2.0,
    )


@pytest.mark.parametrize("build", [every_dcgan_option, dfgan_with_magp], ids=["dcgan", "dfgan"])
def test_every_network_and_loss_option_compiles_under_xla(build):
    # MA-GP's gradient inside the step, spectral norm's power iteration, CA's sampling, the
    # mode-seeking twin pass and DF-GAN's fusion blocks, all in one XLA-compiled step.
    gan = compile_tiny(build(), jit_compile=True)
    history = gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0).history
    assert gan.jit_compile is True
    assert {"gp"} <= set(history) and all(np.isfinite(v[0]) for v in history.values())


def test_every_option_together_hinge_magp_ca_sn_projection():
    gan = compile_tiny(
        tiny_gan(
            loss="hinge",
            ma_gp_weight=2.0,
            generator_kwargs={"conditioning_augmentation": True},
            discriminator_kwargs={"spectral_norm": True, "conditioning": "projection"},
        )
    )
    history = gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0).history
    assert {"gp", "kl"} <= set(history)
    assert all(np.isfinite(v[0]) for v in history.values())
    assert history["gp"][0] > 0


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step_gives_finite_losses(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        gan = tiny_gan()
        wrap = keras.optimizers.LossScaleOptimizer if policy == "mixed_float16" else (lambda o: o)
        gan.compile(
            d_optimizer=wrap(keras.optimizers.Adam(1e-3)),
            g_optimizer=wrap(keras.optimizers.Adam(1e-3)),
        )
        before = weights_of(gan.generator)
        history = gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0).history
        assert all(np.isfinite(v[0]) for v in history.values())
        assert changed(before, weights_of(gan.generator))
        embeddings, noise, _ = inputs(2)
        assert gan.generate(embeddings, noise).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="loss must be one of"):
        tiny_gan(loss="wasserstein")
    with pytest.raises(ValueError, match="ema_decay"):
        tiny_gan(ema_decay=1.0)


def test_generate_is_seeded_and_uses_the_ema_generator():
    gan = compile_tiny(tiny_gan())
    gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0)
    embeddings, noise, _ = inputs(2)
    np.testing.assert_array_equal(
        np.asarray(gan.generate(embeddings, seed=3)), np.asarray(gan.generate(embeddings, seed=3))
    )
    np.testing.assert_allclose(
        np.asarray(gan.generate(embeddings, noise)),
        np.asarray(gan.ema_generator([embeddings, noise], training=False)),
    )
    assert not np.allclose(
        np.asarray(gan.generate(embeddings, noise)), np.asarray(gan.generator([embeddings, noise]))
    )


def test_config_and_keras_file_round_trip_keeps_the_ema(tmp_path):
    gan = compile_tiny(tiny_gan(generator_kwargs={"conditioning_augmentation": True}))
    gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0)
    embeddings, noise, images = inputs(3)
    gan.save(tmp_path / "gan.keras")
    restored = keras.saving.load_model(tmp_path / "gan.keras", compile=False)
    assert isinstance(restored, TextToImageGAN)
    for key in ("loss", "gan_int_beta", "gan_int_weight", "ma_gp_weight", "ema_decay"):
        assert restored.get_config()[key] == gan.get_config()[key]
    assert restored.generator.get_config() == gan.generator.get_config()
    for name in ("generator", "ema_generator"):
        np.testing.assert_allclose(
            np.asarray(getattr(restored, name)([embeddings, noise])),
            np.asarray(getattr(gan, name)([embeddings, noise])),
            atol=1e-6,
        )
    np.testing.assert_allclose(
        np.asarray(restored.discriminator([images, embeddings])),
        np.asarray(gan.discriminator([images, embeddings])),
        atol=1e-6,
    )


def test_embedding_statistics_reach_every_network_and_survive_saving(tmp_path):
    gan = tiny_gan()
    rng = np.random.default_rng(0)
    captions = rng.normal(3.0, 2.0, size=(500, 16)).astype(np.float32)
    gan.set_embedding_statistics(captions)
    for network in (gan.generator, gan.ema_generator, gan.discriminator):
        standardized = np.asarray(network.embedding_norm(captions))
        np.testing.assert_allclose(standardized.mean(0), 0.0, atol=1e-3)
        np.testing.assert_allclose(standardized.std(0), 1.0, atol=1e-3)
    gan.save(tmp_path / "gan.keras")
    restored = keras.saving.load_model(tmp_path / "gan.keras", compile=False)
    np.testing.assert_allclose(
        np.asarray(restored.ema_generator.embedding_norm(captions)),
        np.asarray(gan.ema_generator.embedding_norm(captions)),
        atol=1e-6,
    )


def test_a_saved_gan_loads_with_its_optimizers_compiled_and_trains_on(tmp_path):
    gan = compile_tiny(tiny_gan())
    gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0)
    path = tmp_path / "gan.keras"
    gan.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    assert not [w for w in caught if "compile()" in str(w.message)], [
        str(w.message) for w in caught
    ]
    assert loaded.compiled
    for name in ("d_optimizer", "g_optimizer"):
        optimizer, original = getattr(loaded, name), getattr(gan, name)
        assert optimizer.get_config() == original.get_config()
        assert int(optimizer.iterations) == int(original.iterations) == 2
        for slot, saved in zip(optimizer.variables, original.variables):
            np.testing.assert_array_equal(np.array(slot), np.array(saved))
    before = weights_of(loaded.generator)
    history = loaded.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0).history
    assert np.isfinite(history["g_loss"][0]) and changed(before, weights_of(loaded.generator))
    assert int(loaded.g_optimizer.iterations) == 3


def test_unconditional_loss_trains_the_realism_logit_on_real_versus_fake():
    gan = compile_tiny(
        tiny_gan(
            loss="hinge",
            discriminator_kwargs={"conditioning": "projection", "unconditional_output": True},
        )
    )
    _, noise, images = inputs(3)
    embeddings = inputs(3)[0]
    logits = gan.discriminator([images, embeddings])
    assert logits.shape == (3, 2)
    history = gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"][-1])


def test_patch_realism_losses_are_the_mean_over_patches_of_real_versus_fake():
    """The logged losses of one step at learning rate 0 against a hand computation: the
    matching-aware hinge terms plus, per example, the patches' mean real-vs-fake hinge."""
    gan = tiny_gan(loss="hinge", gan_int_weight=0.0, discriminator_kwargs={"patch_realism": True})
    gan.compile(d_optimizer=keras.optimizers.SGD(0.0), g_optimizer=keras.optimizers.SGD(0.0))
    batch = next(iter(tiny_batches()))
    fake = gan.generator.generate(batch["embedding"], batch["noise"][:, 0], training=True)[0]
    real, wrong, fake_logits = (
        np.asarray(gan.discriminator([images, batch["embedding"]], training=True))
        for images in (batch["image"], batch["wrong_image"], fake)
    )
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    mask = np.asarray(batch["wrong_mask"])
    d_expected = (
        relu(1 - real[:, 0])
        + 0.5 * (mask * relu(1 + wrong[:, 0]) + relu(1 + fake_logits[:, 0]))
        + (relu(1 - real[:, 1:]) + relu(1 + fake_logits[:, 1:])).mean(axis=1)
    )
    g_expected = -fake_logits[:, 0] - fake_logits[:, 1:].mean(axis=1)
    history = gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0).history
    np.testing.assert_allclose(history["d_loss"][0], d_expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(history["g_loss"][0], g_expected.mean(), rtol=1e-5)


def test_contrastive_term_joins_both_losses_as_a_hand_computation_says():
    """One step at learning rate 0: D's loss is the matching-aware hinge plus λ·InfoNCE of the
    real images over the batch's captions, G's the hinge plus λ·InfoNCE of its fakes."""
    weight = 0.5
    gan = tiny_gan(
        loss="hinge",
        gan_int_weight=0.0,
        contrastive_weight=weight,
        discriminator_kwargs={"conditioning": "projection"},
    )
    gan.compile(d_optimizer=keras.optimizers.SGD(0.0), g_optimizer=keras.optimizers.SGD(0.0))
    batch = next(iter(tiny_batches()))
    text = batch["embedding"]
    fake = gan.generator.generate(text, batch["noise"][:, 0], training=True)[0]
    d = gan.discriminator
    real, real_images, real_captions, fake_logits, fake_images, fake_captions = (
        np.asarray(v)
        for images in (batch["image"], fake)
        for v in d.logits_and_codes([images, text], training=True)
    )
    real_scores, fake_scores = real_images @ real_captions.T, fake_images @ fake_captions.T
    wrong = np.asarray(d([batch["wrong_image"], text], training=True))

    def info_nce(scores):  # the batch's embeddings are distinct: every other caption is negative
        s = scores / 0.1
        return np.log(np.exp(s).sum(axis=1)) - np.diag(s)

    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    mask = np.asarray(batch["wrong_mask"])
    d_expected = relu(1 - real) + 0.5 * (mask * relu(1 + wrong) + relu(1 + fake_logits))
    d_expected = d_expected + weight * info_nce(real_scores)
    g_expected = -fake_logits + weight * info_nce(fake_scores)
    history = gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0).history
    np.testing.assert_allclose(history["d_loss"][0], d_expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(history["g_loss"][0], g_expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(history["contrastive"][0], info_nce(real_scores).mean(), rtol=1e-5)


def test_contrastive_term_needs_the_projection_discriminator_and_no_ma_gp():
    with pytest.raises(ValueError, match="conditioning='projection'"):
        tiny_gan(contrastive_weight=1.0)
    with pytest.raises(ValueError, match="choose one"):
        tiny_gan(
            contrastive_weight=1.0,
            ma_gp_weight=2.0,
            discriminator_kwargs={"conditioning": "projection"},
        )


def test_patch_realism_trains_its_logits():
    gan = compile_tiny(tiny_gan(discriminator_kwargs={"patch_realism": True}))
    before = np.array(gan.discriminator.patch_logits.kernel)
    history = gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"][-1]) and np.isfinite(history["g_loss"][-1])
    assert not np.allclose(before, np.array(gan.discriminator.patch_logits.kernel))


def test_unconditional_output_needs_the_projection_discriminator():
    with pytest.raises(ValueError, match="projection"):
        tiny_discriminator(conditioning="concat", unconditional_output=True)


def test_mode_seeking_term_is_tracked_and_changes_the_generator_update():
    """The same step with and without the term: only the generator's update differs."""
    updates = {}
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        gan = compile_tiny(tiny_gan(mode_seeking_weight=weight))
        history = gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0).history
        trained = [
            [np.array(w) for w in net.trainable_weights]
            for net in (gan.generator, gan.discriminator)
        ]
        updates[weight] = (*trained, history)
    assert "mode_seeking" in updates[1.0][2] and "mode_seeking" not in updates[0.0][2]
    assert updates[1.0][2]["mode_seeking"][0] > 0
    assert changed(updates[0.0][0], updates[1.0][0])
    assert not changed(updates[0.0][1], updates[1.0][1])
