"""One training run: data with embedded captions, the GAN, its optimizers, callbacks, `fit`.

`scripts/train.py` only parses flags and calls `train`; everything here is importable and tested.
Run-directory layout:

    <run_dir>/config.json           the resolved config (reproduces the run)
    <run_dir>/model.keras           the trained TextToImageGAN (config + weights, EMA included)
    <run_dir>/checkpoints/last.keras  written atomically after every epoch
    <run_dir>/samples/epoch_XXXX.png  fixed captions x fixed noise, EMA generator
    <run_dir>/history.json, training_curves.png, logs/ (TensorBoard)
"""

from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np

from t2i_keras import callbacks as t2i_callbacks
from t2i_keras import plots
from t2i_keras.config import Config
from t2i_keras.data import flowers
from t2i_keras.data.pipeline import training_dataset
from t2i_keras.discriminator import Discriminator
from t2i_keras.gan import TextToImageGAN
from t2i_keras.generator import Generator
from t2i_keras.text_encoder import TextEncoder, embed_captions


@dataclasses.dataclass
class CaptionedImages:
    """A split held in memory: images, their captions and the captions' embeddings.

    Attributes:
        images: uint8 [N, H, W, 3].
        captions: str [N, C].
        embeddings: float32 [N, C, D].
        class_ids: int32 [N].
        attributes: extra per-image arrays (ground truth for evaluation), keyed by name.
    """

    images: np.ndarray
    captions: np.ndarray
    embeddings: np.ndarray
    class_ids: np.ndarray
    attributes: dict[str, np.ndarray]


def load_split(config: Config, split: str, encoder: TextEncoder) -> CaptionedImages:
    """Builds one split of the configured dataset and embeds its captions (cached)."""
    if config.data.dataset != "flowers":
        raise ValueError(f"Unknown dataset {config.data.dataset!r}; available: 'flowers'")
    count = config.data.num_train if split == "train" else config.data.num_test
    examples = flowers.generate_examples(
        count, image_size=config.data.image_size, seed=config.data.seed, split=split
    )
    captions = examples["captions"]
    flat = embed_captions([str(c) for c in captions.reshape(-1)], encoder)
    attributes = {
        k: v for k, v in examples.items() if k not in ("image", "captions", "class_id")
    }
    return CaptionedImages(
        images=examples["image"],
        captions=captions,
        embeddings=flat.reshape(*captions.shape, -1),
        class_ids=examples["class_id"].astype(np.int32),
        attributes=attributes,
    )


def build_gan(config: Config, embedding_dim: int) -> TextToImageGAN:
    """The generator, discriminator and GAN wrapper described by `config` (not yet compiled)."""
    m, t = config.model, config.train
    generator = Generator(
        image_size=config.data.image_size,
        embedding_dim=embedding_dim,
        z_dim=m.z_dim,
        text_projection_dim=m.text_projection_dim,
        filters=m.generator_filters,
        conditioning_augmentation=m.conditioning_augmentation,
        seed=t.seed,
    )
    discriminator = Discriminator(
        image_size=config.data.image_size,
        embedding_dim=embedding_dim,
        text_projection_dim=m.text_projection_dim,
        filters=m.discriminator_filters,
        spectral_norm=m.spectral_norm,
        conditioning=m.discriminator_conditioning,
    )
    return TextToImageGAN(
        generator,
        discriminator,
        loss=t.loss,
        gan_int_beta=t.gan_int_beta,
        gan_int_weight=t.gan_int_weight,
        ma_gp_weight=t.ma_gp_weight,
        ema_decay=t.ema_decay,
        seed=t.seed,
    )


def make_optimizer(config: Config, learning_rate: float, steps_per_epoch: int):
    """Adam as in Reed (beta1 0.5), the rate halved every `lr_halve_every` epochs."""
    t = config.train
    schedule = learning_rate
    if t.lr_halve_every > 0:
        schedule = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, t.lr_halve_every * steps_per_epoch, 0.5, staircase=True
        )
    optimizer = keras.optimizers.Adam(schedule, beta_1=t.beta_1, beta_2=t.beta_2)
    if t.precision == "mixed_float16":
        # float16 gradients underflow without loss scaling (Micikevicius et al. 2018).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def compile_gan(gan: TextToImageGAN, config: Config, steps_per_epoch: int) -> TextToImageGAN:
    gan.compile(
        d_optimizer=make_optimizer(config, config.train.discriminator_lr, steps_per_epoch),
        g_optimizer=make_optimizer(config, config.train.generator_lr, steps_per_epoch),
        jit_compile=config.train.jit_compile,
    )
    return gan


def train(config: Config, run_dir: str | pathlib.Path, verbose: int | str = "auto") -> TextToImageGAN:
    """Trains a GAN as configured, writing everything into `run_dir` (see the module docstring)."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    keras.mixed_precision.set_global_policy(config.train.precision)
    keras.utils.set_random_seed(config.train.seed)

    encoder = TextEncoder(config.text_encoder)
    data = load_split(config, "train", encoder)
    steps_per_epoch = config.train.steps_per_epoch or len(data.images) // config.train.batch_size
    dataset = training_dataset(
        data.images,
        data.embeddings,
        data.class_ids,
        batch_size=config.train.batch_size,
        seed=config.data.seed,
        flip=config.data.flip,
    )
    gan = compile_gan(build_gan(config, encoder.output_dim), config, steps_per_epoch)
    gan.set_embedding_statistics(data.embeddings.reshape(-1, encoder.output_dim))
    sample_embeddings = embed_captions(list(config.sample_captions), encoder, progress=False)
    callbacks = [
        t2i_callbacks.SampleGrid(
            config.sample_captions,
            sample_embeddings,
            run_dir / "samples",
            samples_per_caption=config.samples_per_caption,
            seed=config.train.seed,
            log_dir=run_dir / "logs",
        ),
        t2i_callbacks.TrainingCurves(run_dir),
        t2i_callbacks.AtomicModelCheckpoint(run_dir / "checkpoints" / "last.keras"),
        keras.callbacks.TensorBoard(run_dir / "logs", update_freq="epoch"),
        keras.callbacks.TerminateOnNaN(),
    ]
    gan.fit(
        dataset,
        epochs=config.train.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )
    t2i_callbacks.save_model_atomically(gan, run_dir / "model.keras")
    return gan


def load_run(run_dir: str | pathlib.Path) -> tuple[TextToImageGAN, Config]:
    """The trained GAN and config of a run (the final model, else the last checkpoint)."""
    run_dir = pathlib.Path(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json")
    config = Config.load(config_file)
    for candidate in (run_dir / "model.keras", run_dir / "checkpoints" / "last.keras"):
        if candidate.exists():
            return keras.saving.load_model(candidate, compile=False), config
    raise FileNotFoundError(
        f"{run_dir} holds no model.keras nor checkpoints/last.keras: has training finished an epoch?"
    )


def generate_images(
    gan: TextToImageGAN,
    encoder: TextEncoder,
    captions: list[str],
    num_per_caption: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """uint8 [len(captions), num_per_caption, H, W, 3] from the EMA generator; seeded noise."""
    embeddings = embed_captions(captions, encoder, cache_root=False, progress=False)
    embeddings = np.repeat(embeddings, num_per_caption, axis=0)
    noise = np.random.default_rng(seed).standard_normal((len(embeddings), gan.generator.z_dim))
    images = plots.to_uint8(np.asarray(gan.generate(embeddings, noise.astype(np.float32))))
    return images.reshape(len(captions), num_per_caption, *images.shape[1:])
