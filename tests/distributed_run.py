"""Subprocess entry points for tests/training/test_distribute.py (device layouts, TF_CONFIG and
kills need a fresh process).

python -m tests.distributed_run equivalence --steps 3 --runs reed,quickstart:sgd,...
    one device at global batch 2B vs MirroredStrategy over 2 logical CPUs at 2B, for each run
    (network[:adam|sgd[:global|replica_mean]]); prints JSON with the largest weight differences
    per run and network.
python -m tests.distributed_run train [--optimizer sgd] [--kill-after-step K
                                      | --kill-in-backup K | --kill-in-model-save] -- TRAIN_FLAGS
    `t2i-keras train TRAIN_FLAGS` with op determinism (one worker of several when TF_CONFIG is
    set), optionally with SGD; optionally SIGKILLs itself at a chosen moment; prints the step it
    resumed from and the steps it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tiny_networks(name: str):
    """The configurations the equivalence test covers, as tiny networks (16x16, 4 filters)."""
    from t2i_keras.models.fused_generator import FusedGenerator
    from t2i_keras.models.gan import TextToImageGAN
    from t2i_keras.models.residual_discriminator import ResidualDiscriminator
    from tests.gan_helpers import EMBEDDING_DIM, Z_DIM, tiny_gan

    if name == "reed":  # BCE, concatenation, batch norm, MA-GP: Reed's networks
        return tiny_gan(ma_gp_weight=1.0)
    if name == "quickstart":  # hinge, SN, projection, patch realism, contrastive: the quickstart
        return tiny_gan(
            loss="hinge",
            contrastive_weight=0.3,
            discriminator_kwargs={
                "spectral_norm": True,
                "conditioning": "projection",
                "patch_realism": True,
            },
        )
    if name == "dfgan":  # deep fusion, residual one-way D, hinge + MA-GP: the dfgan presets
        shared = {"image_size": 16, "embedding_dim": EMBEDDING_DIM, "filters": 4}
        return TextToImageGAN(
            FusedGenerator(**shared, z_dim=Z_DIM, seed=0),
            ResidualDiscriminator(**shared),
            loss="hinge",
            ma_gp_weight=2.0,
            ema_decay=0.5,
        )
    raise ValueError(f"unknown configuration {name!r}")


def equivalence(steps: int, precision: str, runs) -> dict:
    """Trains each run (`network[:optimizer[:reduction]]`) on one device and on two mirrored ones
    from the same weights; reports the largest differences per network.

    `optimizer` "adam" (default) or "sgd": SGD's update is proportional to the gradient (Adam
    normalizes a wrong gradient scale away). `reduction` "global" (default) or "replica_mean":
    a per-replica mean instead of the global-batch average, which the all-reduce then sums — the
    bug the test must catch.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from t2i_keras.training import distribute
    from tests.gan_helpers import tiny_batches

    distribute.install_keras_workarounds()  # this builds its own MirroredStrategy
    global_average = tf.nn.compute_average_loss

    def make_optimizer(optimizer):
        if optimizer == "sgd":
            # 0.05 made DF-GAN's MA-GP (gradient norm to the 6th power) blow the discriminator up
            # from half of the random starts; at 0.01 none of 12 did.
            return keras.optimizers.SGD(0.01)
        return keras.optimizers.Adam(1e-3, beta_1=0.5)

    keras.mixed_precision.set_global_policy(precision)
    parts = ("generator", "discriminator", "ema_generator")
    report = {}
    # One MirroredStrategy for every configuration: two in one process number their collectives
    # alike and the second one's all-reduces collide with the first one's.
    strategies = (
        ("one_device", tf.distribute.get_strategy()),
        ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
    )
    for run in runs:
        config, optimizer, reduction = (run.split(":") + ["adam", "global"][run.count(":") :])[:3]
        # Read when train_step is traced, which each new model does on its first fit.
        tf.nn.compute_average_loss = (
            (lambda per_example, **_: tf.reduce_mean(per_example))
            if reduction == "replica_mean"
            else global_average
        )
        initial, results = None, {}
        keras.utils.set_random_seed(0)  # the same start on every machine and in any run order
        for name, strategy in strategies:
            with strategy.scope():
                gan = tiny_networks(config)
                gan.compile(
                    d_optimizer=make_optimizer(optimizer), g_optimizer=make_optimizer(optimizer)
                )
            if initial is None:
                initial = {p: [np.array(w) for w in getattr(gan, p).weights] for p in parts}
                initial_all = [np.array(w) for w in gan.weights]
            else:  # identical starting point, whatever the initializers did
                for weight, value in zip(gan.weights, initial_all, strict=True):
                    weight.assign(value)
            gan.fit(
                tiny_batches(batch=16), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False
            )
            results[name] = {p: [np.array(w) for w in getattr(gan, p).weights] for p in parts}
            results[name]["replicas"] = strategy.num_replicas_in_sync
        entry = {"replicas": results["mirrored"]["replicas"]}
        for part in parts:
            pairs = list(zip(results["one_device"][part], results["mirrored"][part]))
            entry[part] = {
                "max_abs_diff": max(float(np.max(np.abs(a - b))) for a, b in pairs),
                "max_change": max(
                    float(np.max(np.abs(a - b)))
                    for a, b in zip(initial[part], results["one_device"][part])
                ),
                "weights": len(pairs),
            }
        report[run] = entry
    return report


def train_and_maybe_die(args, train_flags) -> int:
    """`t2i-keras train TRAIN_FLAGS`, changed in this process only by wrapping library functions:
    `args.optimizer` "sgd" trains with SGD at the configured learning rates (its update follows
    the gradient's scale, which Adam normalizes away); the kill flags SIGKILL it at their moment.
    Prints one JSON line last: {"resumed_from": the step restored from a backup (0: none),
    "steps_run": steps this process ran}; returns the command's exit status."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    import keras

    from t2i_keras.cli.main import main as t2i_keras
    from t2i_keras.training import backup, trainer

    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if args.optimizer == "sgd":
        trainer.make_optimizer = lambda config, learning_rate, steps: keras.optimizers.SGD(
            learning_rate
        )
    record = {"resumed_from": None, "steps_run": 0}
    original_restore = backup.TrainingBackup.restore

    def restore(self):
        step = original_restore(self)
        record["resumed_from"] = step
        return step

    backup.TrainingBackup.restore = restore
    original_batch_end = backup.BackupEverySteps.on_train_batch_end

    def batch_end(self, batch, logs=None):
        original_batch_end(self, batch, logs)  # a backup due at this step is written here
        record["steps_run"] += 1
        if self.step == args.kill_after_step:
            die()

    backup.BackupEverySteps.on_train_batch_end = batch_end
    original_backup_save = backup.TrainingBackup.save
    saving_backup = [None]

    def backup_save(self, step):
        saving_backup[0] = step
        try:
            return original_backup_save(self, step)
        finally:
            saving_backup[0] = None

    backup.TrainingBackup.save = backup_save
    original_save = keras.Model.save

    def save(self, path, *a, **k):
        original_save(self, path, *a, **k)
        if saving_backup[0] is not None and saving_backup[0] == args.kill_in_backup:
            die()  # the backup's files exist, its folder is not renamed into place yet
        name = os.path.basename(str(path))
        if args.kill_in_model_save and saving_backup[0] is None and ".last." in name:
            with open(path, "r+b") as f:  # half-written, as a kill mid-write leaves it
                f.truncate(os.path.getsize(path) // 2)
            die()

    keras.Model.save = save
    status = t2i_keras(["train", *train_flags])
    print(json.dumps(record))
    return status


def main() -> None:
    # The training's own flags follow "--", so that none of them can be taken for the harness's.
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    argv, train_flags = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    eq = sub.add_parser("equivalence")
    eq.add_argument("--steps", type=int, default=3)
    eq.add_argument("--precision", default="float32")
    eq.add_argument("--runs", default="reed", help="network[:adam|sgd[:global|replica_mean]],...")
    tr = sub.add_parser("train")
    tr.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    tr.add_argument("--kill-after-step", type=int)
    tr.add_argument("--kill-in-backup", type=int)
    tr.add_argument("--kill-in-model-save", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "equivalence":
        print(json.dumps(equivalence(args.steps, args.precision, args.runs.split(","))))
    else:
        sys.exit(train_and_maybe_die(args, train_flags))


if __name__ == "__main__":
    main()
