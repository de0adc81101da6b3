"""One training run: data with embedded captions, the GAN, its optimizers, callbacks, `fit`.

`t2i-keras train` (`t2i_keras.cli`) only parses flags and calls `train`; everything here is
importable and tested.
Run-directory layout:

    <run_dir>/config.json           the resolved config (reproduces the run)
    <run_dir>/model.keras           the trained TextToImageGAN (config + weights, EMA included)
    <run_dir>/checkpoints/last.keras  written atomically after every epoch
    <run_dir>/backup/step_N/        the latest backups (resume after a kill; see training.backup)
    <run_dir>/samples/epoch_XXXX.png  fixed captions x fixed noise, EMA generator
    <run_dir>/history.json, training_curves.png, logs/ (TensorBoard)
    <run_dir>/timing.json           steps run, seconds, median seconds per step
    <run_dir>/.t2i.lock             held while a training runs (`utils.files.exclusive_lock`)
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil

import keras
import tensorflow as tf

from t2i_keras.config import Config, validate
from t2i_keras.data.pipeline import training_dataset
from t2i_keras.data.splits import load_split
from t2i_keras.metrics.attributes import ClassifierSettings, load_attribute_classifier
from t2i_keras.metrics.callback import GenerationMetrics
from t2i_keras.models.build import build_gan
from t2i_keras.models.gan import TextToImageGAN
from t2i_keras.serving.export import export_saved_model
from t2i_keras.text.embeddings import embed_captions
from t2i_keras.text.encoder import TextEncoder
from t2i_keras.training import callbacks as t2i_callbacks
from t2i_keras.training import distribute
from t2i_keras.training.backup import BackupEverySteps, StopOnNonFiniteLoss, TrainingBackup
from t2i_keras.utils import files


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
    With `export_dir`, the trained model is also exported there for TF Serving
    (`t2i_keras.serving.export`).
    """
    t = validate(config).train
    if strategy is None:
        strategy = distribute.choose_strategy(t.strategy)  # applies Keras' fixes when distributed
    elif strategy is not tf.distribute.get_strategy():
        distribute.install_keras_workarounds()  # the caller's own distributed strategy
    precision = distribute.default_precision() if t.precision == "auto" else t.precision
    if t.jit_compile and strategy.num_replicas_in_sync > 1:
        # Keras 3.15 compiles `strategy.run` and the step into one XLA cluster, and an XLA cluster
        # runs on one device: it fails reading the other replicas' variables (XLA's known issue
        # "tf.Variable on a different device"; seen on two CPUs with TF 2.21, not tried on GPUs).
        raise ValueError(
            "train.jit_compile does not work under MirroredStrategy (an XLA cluster runs on one "
            "device); pass --train.jit_compile false for multi-replica runs"
        )
    chief = distribute.is_chief(strategy)
    out_dir = distribute.worker_dir(run_dir, strategy)
    # One training per run directory: a second one would interleave its checkpoints, backups and
    # samples with the first's. Other workers write into their own temporary folders.
    with files.exclusive_lock(out_dir, "training") if chief else contextlib.nullcontext():
        try:
            files.atomic_write_bytes(out_dir / "config.json", config.to_json().encode())
            if verbose:
                chosen = f"{precision} (--precision auto)" if t.precision == "auto" else precision
                print(distribute.describe(strategy, chosen))
            previous_policy = keras.mixed_precision.global_policy()
            keras.mixed_precision.set_global_policy(precision)  # the layers built below keep it
            try:
                return _train(config, run_dir, out_dir, strategy, verbose, export_dir)
            finally:
                keras.mixed_precision.set_global_policy(previous_policy)
        finally:
            if not chief:  # its copy only mirrored the chief's writes
                shutil.rmtree(out_dir, ignore_errors=True)


def _train(config, run_dir, out_dir, strategy, verbose, export_dir) -> TextToImageGAN:
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
    # Every worker restores the chief's backup (run_dir is on a shared file system), so all of
    # them resume at the same step; each then writes into its own folder.
    start_step = TrainingBackup(gan, pathlib.Path(run_dir) / "backup").restore()
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
            embedding_noise=t.embedding_noise,
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
    # Only when a measurement will happen: the callback trains (or loads) a classifier up front.
    if 0 < t.eval_every <= t.epochs and distribute.is_chief(strategy):
        # Before TrainingCurves and TensorBoard: it adds its metrics to the epoch's logs.
        flowers_classifier = (
            load_attribute_classifier(ClassifierSettings(config.data.image_size, config.data.seed))
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
        t2i_callbacks.StepTimer(out_dir / "timing.json"),
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
    files.save_model_atomically(gan, out_dir / "model.keras")
    if export_dir is not None:
        chief = distribute.is_chief(strategy)
        exported = export_saved_model(gan, encoder, export_dir if chief else out_dir / "export")
        if verbose:
            print(f"Exported {exported}")
    if verbose:
        print(
            f"Wrote run {out_dir} ({'chief' if distribute.is_chief(strategy) else 'worker copy'})"
        )
    return gan
