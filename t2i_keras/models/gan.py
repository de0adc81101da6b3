"""GAN-INT-CLS as a `keras.Model`: matching-aware discriminator step, GAN-INT generator step, EMA.

Reed et al. 2016, "Generative Adversarial Text to Image Synthesis": §4.2 (GAN-CLS, the
matching-aware discriminator) and §4.3 (GAN-INT, interpolated caption embeddings). Training goes
through `model.fit` with the custom `train_step` below (the keras-io "overriding train_step"
pattern), so callbacks, progress bars and `tf.distribute` work as for any Keras model.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from t2i_keras.models import losses
from t2i_keras.models.discriminator import Discriminator
from t2i_keras.models.generator import Generator
from t2i_keras.models.kinds import LOSS_KINDS
from t2i_keras.utils.sampling import seeded_noise

BATCH_KEYS = {
    "image",
    "embedding",
    "wrong_image",
    "wrong_mask",
    "mix_embedding",
    "noise",
    "twin_noise",
}


def _split(logits):
    """(matching-aware logits [B], caption-blind realism logits [B, R] or None) from D's output:
    R is 1 for the unconditional logit, one per patch for patch realism."""
    if logits.shape.rank == 1:
        return logits, None
    return logits[:, 0], logits[:, 1:]


def _generator_loss(loss_fn, logits):
    """The generator's loss on D's output: the matching-aware logit's plus the mean of the
    realism logits' (so the realism term weighs as one logit, however many patches)."""
    conditional, realism = _split(logits)
    loss = loss_fn(conditional)
    return loss if realism is None else loss + ops.mean(loss_fn(realism), axis=-1)


def _caption_contrastive(image_codes, caption_codes, embeddings):
    """The contrastive loss of this replica's images against the *global* batch's captions:
    under tf.distribute the caption codes are gathered from every replica, so N replicas rank
    each image among the captions one device would. The gather is an all-reduce sum of
    zero-padded blocks, whose gradient is the all-reduce of the gradients (MultiWorkerMirrored-
    Strategy's collectives refuse `all_gather` inside Keras' step)."""
    context = tf.distribute.get_replica_context()
    local = ops.shape(image_codes)[0]
    offset = context.replica_id_in_sync_group * local
    total = local * context.num_replicas_in_sync

    def gathered(values):
        padding = [[offset, total - offset - local], [0, 0]]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.pad(values, padding))

    return losses.caption_contrastive_loss(
        image_codes,
        gathered(caption_codes),
        offset + ops.arange(local),
        embeddings,
        gathered(ops.cast(embeddings, "float32")),
    )


@keras.saving.register_keras_serializable(package="t2i_keras")
class TextToImageGAN(keras.Model):
    """A generator, a matching-aware discriminator, and an EMA copy of the generator.

    Calling the model runs the EMA generator: `gan([embeddings, noise])` -> images in [-1, 1].

    Args:
        generator: `Generator`.
        discriminator: `Discriminator`.
        loss: str, default "bce". "bce" (non-saturating, Reed) or "hinge" (Miyato et al. 2018).
        gan_int_beta: float, default 0.5. Interpolation weight of GAN-INT (Reed §4.3).
        gan_int_weight: float, default 1.0. Weight of the interpolated generator term; 0 disables.
        ma_gp_weight: float, default 0.0. DF-GAN's matching-aware gradient penalty weight (Tao et
            al. 2022 use 2.0); 0 disables it.
        kl_weight: float, default 1.0. Weight of conditioning augmentation's KL term (StackGAN).
        mode_seeking_weight: float, default 0.0. Weight of MSGAN's mode-seeking term (Mao et
            al. 2019): a second image under the same caption with other noise must differ from
            the first; 0 disables it (and its generator pass).
        ema_decay: float, default 0.999. Decay of the generator weights' moving average (Karras
            et al. 2018; Yazıcı et al. 2019), used for samples and export. 0 copies the weights.
        contrastive_weight: float, default 0.0. Weight of XMC-GAN's image-to-caption contrastive
            term (Zhang et al. 2021) in both losses: D ranks each real image's caption above the
            batch's other captions, G must make its image rank its own caption first. Needs the
            projection discriminator; 0 disables it.

    Example:
        gan = TextToImageGAN(Generator(), Discriminator())
        gan.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        gan.fit(t2i_keras.data.pipeline.training_dataset(...), epochs=10)
    """

    # Every weight is created in __init__ and both optimizers in compile, so Keras' symbolic build
    # is skipped (t2i_keras.training.distribute.install_keras_workarounds).
    builds_all_state = True

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: str = "bce",
        gan_int_beta: float = 0.5,
        gan_int_weight: float = 1.0,
        ma_gp_weight: float = 0.0,
        kl_weight: float = 1.0,
        mode_seeking_weight: float = 0.0,
        ema_decay: float = 0.999,
        contrastive_weight: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if contrastive_weight and getattr(discriminator, "conditioning", None) != "projection":
            raise ValueError(
                "contrastive_weight needs the DCGAN discriminator with conditioning='projection' "
                "(the term compares phi(x) with W e)"
            )
        if contrastive_weight and ma_gp_weight:
            raise ValueError(
                "contrastive_weight and ma_gp_weight both take over the real images' pass "
                "through the discriminator: choose one"
            )
        if loss not in LOSS_KINDS:
            raise ValueError(f"loss must be one of {LOSS_KINDS}, got {loss!r}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.gan_int_beta = gan_int_beta
        self.gan_int_weight = gan_int_weight
        self.ma_gp_weight = ma_gp_weight
        self.kl_weight = kl_weight
        self.mode_seeking_weight = mode_seeking_weight
        self.ema_decay = ema_decay
        self.contrastive_weight = contrastive_weight
        self.ema_generator = type(generator).from_config(
            {**generator.get_config(), "name": "ema_generator"}
        )
        self.ema_generator.trainable = False
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("d_loss", "g_loss", "d_real", "d_wrong", "d_fake")
            + (("gp",) if ma_gp_weight else ())
            + (("mode_seeking",) if mode_seeking_weight else ())
            + (("contrastive",) if contrastive_weight else ())
            + (("kl",) if generator.conditioning_augmentation else ())
        }
        self._build_networks()

    def _build_networks(self):
        """Creates every weight now, so the model saves and loads without a call to `fit`."""
        g = self.generator
        embeddings = np.zeros((1, g.embedding_dim), np.float32)
        noise = np.zeros((1, g.z_dim), np.float32)
        images = np.zeros((1, g.image_size, g.image_size, 3), np.float32)
        for generator in (self.generator, self.ema_generator):
            if not generator.built:
                generator([embeddings, noise])
        if not self.discriminator.built:
            self.discriminator([images, embeddings])
        for ema_weight, weight in zip(self.ema_generator.weights, self.generator.weights):
            ema_weight.assign(weight)
        self.built = True

    def set_embedding_statistics(self, embeddings) -> None:
        """Standardizes caption embeddings with these training captions' statistics in every
        network (see `t2i_keras.models.conditioning`); call before `fit`."""
        for network in (self.generator, self.ema_generator, self.discriminator):
            network.embedding_norm.set_statistics(embeddings)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Built here, in the strategy's scope: lazily built slots inside a replica's train step
        # would be created per replica under MirroredStrategy.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return {
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
            "jit_compile": self.jit_compile,
        }

    def compile_from_config(self, config):
        # Keras calls this when loading a `.keras` file (compile=True): both optimizers are built
        # again, so their saved slots are restored with the weights.
        self.compile(
            d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
            g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]),
            jit_compile=config["jit_compile"],
        )

    def call(self, inputs, training=False):
        return self.ema_generator(inputs, training=False)

    def generate(self, embeddings, noise=None, seed: int = 0):
        """Images in [-1, 1] from the EMA generator; noise ~ N(0, I) from `seed` when not given."""
        embeddings = ops.convert_to_tensor(embeddings, "float32")
        if noise is None:
            noise = seeded_noise(seed, embeddings.shape[0], self.generator.z_dim)
        return self.ema_generator([embeddings, noise], training=False)

    def _score(self, logits):
        """What the d_real/d_wrong/d_fake trackers report: D's probability for BCE, its raw
        output for hinge (which has no probabilistic reading)."""
        return ops.sigmoid(logits) if self.loss == "bce" else logits

    @staticmethod
    def _apply(optimizer, tape, scaled_loss, variables):
        gradients = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))

    def train_step(self, data):
        missing = BATCH_KEYS - set(data)
        if missing:
            raise ValueError(
                f"training batches lack {sorted(missing)}: build them with "
                "t2i_keras.data.pipeline.training_dataset "
                "(or add t2i_keras.data.pairs.add_gan_pairs)"
            )
        images = data["image"]
        embeddings = ops.cast(data["embedding"], "float32")
        noise = data["noise"]  # [B, 2, z]: the fake, the GAN-INT fake
        wrong_mask = data["wrong_mask"]
        d_loss_fn = losses.DISCRIMINATOR_LOSSES[self.loss]
        g_loss_fn = losses.GENERATOR_LOSSES[self.loss]

        # One generator pass serves both updates, as in Reed et al.'s Algorithm 1 (x̂ ← G(z, h)
        # once, then the D step, then the G step): recomputing it for the G step would cost a
        # third of the generator's work and change nothing in expectation.
        with tf.GradientTape() as g_tape:
            fake_images, kl = self.generator.generate(embeddings, noise[:, 0], training=True)
            if self.gan_int_weight:
                beta = self.gan_int_beta
                mixed = beta * embeddings + (1.0 - beta) * ops.cast(
                    data["mix_embedding"], "float32"
                )
                mixed_images, mixed_kl = self.generator.generate(mixed, noise[:, 1], training=True)
                kl = 0.5 * (kl + mixed_kl)

            # Discriminator: real/right, wrong/right, fake/right (GAN-CLS, Reed Alg. 1). Wrong
            # images, GAN-INT partners and noise come with the batch (see t2i_keras.data.pairs).
            with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                if self.ma_gp_weight:
                    real_logits, penalty = losses.matching_aware_gradient_penalty(
                        self.discriminator, images, embeddings, weight=self.ma_gp_weight
                    )
                elif self.contrastive_weight:
                    real_logits, *codes = self.discriminator.logits_and_codes(
                        [images, embeddings], training=True
                    )
                    contrastive = _caption_contrastive(*codes, embeddings)
                else:
                    real_logits = self.discriminator([images, embeddings], training=True)
                wrong_logits = self.discriminator([data["wrong_image"], embeddings], training=True)
                fake_logits = self.discriminator(
                    [tf.stop_gradient(fake_images), embeddings], training=True
                )
                real_logits, real_realism = _split(real_logits)
                wrong_logits, _ = _split(wrong_logits)
                fake_logits, fake_realism = _split(fake_logits)
                d_per_example = d_loss_fn(real_logits, wrong_logits, fake_logits, wrong_mask)
                if real_realism is not None:
                    # StackGAN++'s unconditional term (or PatchGAN's, per patch), real + fake
                    # (the combination with both negatives fake gives real + ½(fake + fake)):
                    # real vs fake whatever the caption, so the realism signal is not crowded
                    # out by the matching task.
                    d_per_example = d_per_example + ops.mean(
                        d_loss_fn(
                            real_realism, fake_realism, fake_realism, tf.ones_like(real_realism)
                        ),
                        axis=-1,
                    )
                if self.ma_gp_weight:
                    d_per_example = d_per_example + penalty
                if self.contrastive_weight:
                    d_per_example = d_per_example + self.contrastive_weight * contrastive
                # Sum over this replica / global batch: the all-reduce's sum then gives the mean.
                d_loss = tf.nn.compute_average_loss(d_per_example)
                # LossScaleOptimizer (mixed_float16) scales up here and back down when applying.
                d_scaled = self.d_optimizer.scale_loss(d_loss)
            self._apply(self.d_optimizer, d_tape, d_scaled, self.discriminator.trainable_variables)

            # Generator, against the updated discriminator: right text, plus GAN-INT's
            # interpolated text (Reed §4.3).
            if self.contrastive_weight:
                fake_g_logits, *codes = self.discriminator.logits_and_codes(
                    [fake_images, embeddings], training=True
                )
                g_per_example = _generator_loss(
                    g_loss_fn, fake_g_logits
                ) + self.contrastive_weight * _caption_contrastive(*codes, embeddings)
            else:
                g_per_example = _generator_loss(
                    g_loss_fn, self.discriminator([fake_images, embeddings], training=True)
                )
            if self.gan_int_weight:
                mixed_logits = self.discriminator([mixed_images, mixed], training=True)
                g_per_example = g_per_example + self.gan_int_weight * _generator_loss(
                    g_loss_fn, mixed_logits
                )
            if self.mode_seeking_weight:
                twin_noise = data["twin_noise"]
                twin_images, _ = self.generator.generate(embeddings, twin_noise, training=True)
                mode_seeking = losses.mode_seeking_loss(
                    fake_images, twin_images, noise[:, 0], twin_noise
                )
                g_per_example = g_per_example + self.mode_seeking_weight * mode_seeking
            if self.generator.conditioning_augmentation:
                g_per_example = g_per_example + self.kl_weight * kl
            g_scaled = self.g_optimizer.scale_loss(tf.nn.compute_average_loss(g_per_example))
        self._apply(self.g_optimizer, g_tape, g_scaled, self.generator.trainable_variables)
        self._update_ema()

        # Trackers take this replica's mean; Keras averages the replicas' Mean states.
        self.trackers["d_loss"].update_state(ops.mean(d_per_example))
        self.trackers["g_loss"].update_state(ops.mean(g_per_example))
        self.trackers["d_real"].update_state(ops.mean(self._score(real_logits)))
        self.trackers["d_wrong"].update_state(
            ops.sum(self._score(wrong_logits) * wrong_mask) / ops.maximum(ops.sum(wrong_mask), 1.0)
        )
        self.trackers["d_fake"].update_state(ops.mean(self._score(fake_logits)))
        if self.ma_gp_weight:
            self.trackers["gp"].update_state(ops.mean(penalty))
        if self.mode_seeking_weight:
            self.trackers["mode_seeking"].update_state(ops.mean(mode_seeking))
        if self.contrastive_weight:
            self.trackers["contrastive"].update_state(ops.mean(contrastive))
        if self.generator.conditioning_augmentation:
            self.trackers["kl"].update_state(ops.mean(kl))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _update_ema(self):
        """ema ← decay·ema + (1 − decay)·w for weights; batch-norm statistics are copied.

        The update runs in cross-replica context (like an optimizer's), because the EMA variables
        are mirrored and a replica may not assign them on its own under MirroredStrategy.
        """
        decay = self.ema_decay
        pairs = [
            (ema.value, weight.value, weight.trainable)
            for ema, weight in zip(self.ema_generator.weights, self.generator.weights)
        ]

        def update(distribution, pairs):
            for ema, weight, trainable in pairs:
                if trainable:
                    fn = lambda e, w: e.assign(decay * e + (1.0 - decay) * w)  # noqa: E731
                else:
                    fn = lambda e, w: e.assign(w)  # noqa: E731
                distribution.extended.update(ema, fn, args=(weight,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            update, tf.distribute.get_strategy(), pairs
        )

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.layers.serialize(self.generator),
            "discriminator": keras.layers.serialize(self.discriminator),
            "loss": self.loss,
            "gan_int_beta": self.gan_int_beta,
            "gan_int_weight": self.gan_int_weight,
            "ma_gp_weight": self.ma_gp_weight,
            "kl_weight": self.kl_weight,
            "mode_seeking_weight": self.mode_seeking_weight,
            "ema_decay": self.ema_decay,
            "contrastive_weight": self.contrastive_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.layers.deserialize(config["generator"])
        config["discriminator"] = keras.layers.deserialize(config["discriminator"])
        return cls(**config)
