"""One training run: data with embedded captions, the GAN, its optimizers, callbacks, `fit`.

`scripts/train.py` only parses flags and calls `train`; everything here is importable and tested.
Run-directory layout:

    <run_dir>/config.json           the resolved config (reproduces the run)
    <run_dir>/model.keras           the trained TextToImageGAN (config + weights, EMA included)
    <run_dir>/checkpoints/last.keras  written atomically after every epoch
    <run_dir>/backup/step_N/        the latest backups (resume after a kill; see t2i_keras.training.backup)
    <run_dir>/samples/epoch_XXXX.png  fixed captions x fixed noise, EMA generator
    <run_dir>/history.json, training_curves.png, logs/ (TensorBoard)
"""

from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np
import tensorflow as tf

from t2i_keras.utils import files

from t2i_keras.training import distribute

from t2i_keras.utils import plots
from t2i_keras.training import callbacks as t2i_callbacks
from t2i_keras.training.backup import BackupEverySteps, StopOnNonFiniteLoss, TrainingBackup
from t2i_keras.config import Config
from t2i_keras.data import flowers
from t2i_keras.data.pipeline import training_dataset
from t2i_keras.data.prepared import load_prepared, prepare_dataset
from t2i_keras.models.discriminator import Discriminator
from t2i_keras.serving.export import export_saved_model
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.models.generator import Generator
from t2i_keras.metrics.attributes import load_attribute_classifier
from t2i_keras.metrics.callback import GenerationMetrics
from t2i_keras.text.encoder import TextEncoder, embed_captions


@dataclasses.dataclass
class CaptionedImages:
    """A split held in memory: images, their captions and the captions' embeddings.

    Attributes:
        images: uint8 [N, H, W, 3].
        captions: str [N, C] ("" past an image's count).
        embeddings: float32 [N, C, D] (zero rows past an image's count).
        caption_counts: int32 [N], real captions per image (C for the procedural flowers).
        class_ids: int32 [N]; wrong images are drawn from other classes.
        attributes: extra per-image arrays (ground truth for evaluation, ids), keyed by name.
    """

    images: np.ndarray
    captions: np.ndarray
    embeddings: np.ndarray
    caption_counts: np.ndarray
    class_ids: np.ndarray
    attributes: dict[str, np.ndarray]

    def real_embeddings(self) -> np.ndarray:
        """float32 [total captions, D]: every real caption's embedding, padding left out."""
        valid = np.arange(self.embeddings.shape[1]) < self.caption_counts[:, None]
        return self.embeddings[valid]


def load_split(config: Config, split: str, encoder: TextEncoder) -> CaptionedImages:
    """One split ("train" or "test") of the configured dataset, captions embedded (cached).

    Real datasets are prepared once into the cache (decoded, resized, embedded; see
    `t2i_keras.data.prepared`) and reused by every later run.
    """
    d = config.data
    if d.dataset == "flowers":
        count = d.num_train if split == "train" else d.num_test
        examples = flowers.generate_examples(count, image_size=d.image_size, seed=d.seed, split=split)
        captions = examples["captions"]
        flat = embed_captions([str(c) for c in captions.reshape(-1)], encoder)
        return CaptionedImages(
            images=examples["image"],
            captions=captions,
            embeddings=flat.reshape(*captions.shape, -1),
            caption_counts=np.full(len(captions), captions.shape[1], np.int32),
            class_ids=examples["class_id"].astype(np.int32),
            attributes={
                k: v for k, v in examples.items() if k not in ("image", "captions", "class_id")
            },
        )
    if not d.data_dir:
        raise ValueError(
            f"dataset {d.dataset!r} is read from disk: set --data.data_dir to its folder "
            "(see the README's 'Training on real data')"
        )
    prepared = prepare_dataset(
        d.dataset,
        d.data_dir,
        d.train_split if split == "train" else d.test_split,
        d.image_size,
        encoder,
        resize_policy=d.resize_policy,
        max_captions=d.max_captions or None,
    )
    data = load_prepared(prepared)
    return CaptionedImages(
        images=data["images"],
        captions=data["captions"],
        embeddings=data["embeddings"],
        caption_counts=data["caption_counts"],
        class_ids=data["class_ids"],
        attributes={"ids": data["ids"]},
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


def train(
    config: Config,
    run_dir: str | pathlib.Path,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    export_dir: str | pathlib.Path | None = None,
) -> TextToImageGAN:
    """Trains a GAN as configured, writing everything into `run_dir` (see the module docstring).

    Running the same command again after a crash or a kill resumes from the last backup (every
    `train.backup_every` steps) and gives the same result as an uninterrupted run. Under several
    workers only the chief writes into `run_dir`; the others write into temporary folders.
    A NaN/Inf loss stops the run with a `FloatingPointError`; the last good backup is kept.
    With `export_dir`, the trained model is also exported there for TF Serving (`t2i_keras.serving.export`).
    """
    t = config.train
    strategy = strategy or distribute.choose_strategy(t.strategy)
    precision = distribute.default_precision() if t.precision == "auto" else t.precision
    if t.jit_compile and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            "train.jit_compile does not work under MirroredStrategy on CPUs (TF 2.21); "
            "turn it off for multi-replica runs"
        )
    out_dir = distribute.worker_dir(run_dir, strategy)
    out_dir.mkdir(parents=True, exist_ok=True)
    files.atomic_write_bytes(out_dir / "config.json", config.to_json().encode())
    if verbose:
        print(f"Training with {precision} on {strategy.num_replicas_in_sync} replica(s)")
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)  # the layers built below keep it
    try:
        return _train(config, out_dir, strategy, verbose, export_dir)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(config, out_dir, strategy, verbose, export_dir) -> TextToImageGAN:
    t = config.train
    keras.utils.set_random_seed(t.seed)

    encoder = TextEncoder(config.text_encoder)
    data = load_split(config, "train", encoder)
    steps_per_epoch = t.steps_per_epoch or len(data.images) // t.batch_size
    total_steps = t.epochs * steps_per_epoch
    with strategy.scope():
        gan = compile_gan(build_gan(config, encoder.output_dim), config, steps_per_epoch)
        gan.set_embedding_statistics(data.real_embeddings())
    backup = TrainingBackup(gan, out_dir / "backup")
    start_step = backup.restore()
    if verbose and start_step:
        print(f"Resuming {out_dir} from its backup at step {start_step} of {total_steps}")

    def dataset(from_step):
        return training_dataset(
            data.images,
            data.embeddings,
            data.class_ids,
            batch_size=t.batch_size,
            seed=config.data.seed,
            flip=config.data.flip,
            caption_counts=data.caption_counts,
            z_dim=config.model.z_dim,
            start_step=from_step,
        )

    stop_on_nan = StopOnNonFiniteLoss(start_step)
    callbacks = [
        stop_on_nan,
        BackupEverySteps(backup, t.backup_every, start_step),
        t2i_callbacks.SampleGrid(
            config.sample_captions,
            embed_captions(list(config.sample_captions), encoder, progress=False),
            out_dir / "samples",
            samples_per_caption=config.samples_per_caption,
            seed=t.seed,
            log_dir=out_dir / "logs",
        ),
    ]
    if t.eval_every > 0 and distribute.is_chief(strategy):
        # Before TrainingCurves and TensorBoard: it adds its metrics to the epoch's logs.
        flowers_classifier = (
            load_attribute_classifier(config.data.image_size, config.data.seed)
            if config.data.dataset == "flowers"
            else None
        )
        callbacks.append(
            GenerationMetrics.from_split(
                load_split(config, "test", encoder),
                num_samples=t.eval_samples,
                every_epochs=t.eval_every,
                attribute_classifier=flowers_classifier,
                log_dir=out_dir / "logs" / "metrics",
                seed=t.seed,
            )
        )
    callbacks += [
        t2i_callbacks.TrainingCurves(out_dir),
        t2i_callbacks.AtomicModelCheckpoint(out_dir / "checkpoints" / "last.keras"),
        keras.callbacks.TensorBoard(out_dir / "logs", update_freq="epoch"),
    ]
    # A run killed mid-epoch first finishes that epoch, then runs the remaining whole epochs; the
    # data stream restarts exactly at the restored step either way.
    epoch, offset = divmod(start_step, steps_per_epoch)
    phases = []
    if offset:
        phases.append((epoch, epoch + 1, steps_per_epoch - offset, start_step))
        epoch += 1
    if epoch < t.epochs:
        phases.append((epoch, t.epochs, steps_per_epoch, epoch * steps_per_epoch))
    for initial_epoch, epochs, steps, from_step in phases:
        gan.fit(
            dataset(from_step),
            initial_epoch=initial_epoch,
            epochs=epochs,
            steps_per_epoch=steps,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, by seed
            verbose=verbose,
        )
        if stop_on_nan.failed_at is not None:
            last = backup.latest()
            raise FloatingPointError(
                f"training stopped: a loss became NaN/Inf at step {stop_on_nan.failed_at} "
                f"({stop_on_nan.failed_logs}). The last good backup is "
                f"{last if last else 'none (no backup was written yet)'}; running the same command "
                "resumes from it. Lower the learning rates, or use float32 / loss scaling."
            )
    t2i_callbacks.save_model_atomically(gan, out_dir / "model.keras")
    if export_dir is not None:
        chief = distribute.is_chief(strategy)
        exported = export_saved_model(gan, encoder, export_dir if chief else out_dir / "export")
        if verbose:
            print(f"Exported {exported}")
    if verbose:
        print(f"Wrote run {out_dir} ({'chief' if distribute.is_chief(strategy) else 'worker copy'})")
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
