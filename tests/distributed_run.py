"""Subprocess entry points for tests/training/test_distribute.py (device layouts and kills need
a fresh process).

python -m tests.distributed_run equivalence --steps 3
    one device at global batch 2B vs MirroredStrategy over 2 logical CPUs at 2B; prints JSON
    with the largest weight differences per network.
python -m tests.distributed_run train CONFIG_JSON RUN_DIR [--kill-after-step K | --kill-in-backup K
                                                         | --kill-in-model-save]
    `train()` with op determinism; optionally SIGKILLs itself at a chosen moment.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def equivalence(steps: int, precision: str) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from t2i_keras.training import distribute
    from tests.gan_helpers import compile_tiny, tiny_batches, tiny_gan

    distribute.install_keras_workarounds()  # this builds its own MirroredStrategy

    keras.mixed_precision.set_global_policy(precision)
    initial = None
    initial_parts = None
    results = {}
    for name, strategy in (
        ("one_device", tf.distribute.get_strategy()),
        ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
    ):
        with strategy.scope():
            gan = compile_tiny(tiny_gan(ma_gp_weight=1.0))
        if initial is None:
            initial = [np.array(w) for w in gan.weights]
            initial_parts = {
                part: [np.array(w) for w in getattr(gan, part).weights]
                for part in ("generator", "discriminator", "ema_generator")
            }
        else:  # identical starting point, whatever the initializers did
            for weight, value in zip(gan.weights, initial):
                weight.assign(value)
        gan.fit(tiny_batches(batch=16), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        results[name] = {
            part: [np.array(w) for w in getattr(gan, part).weights]
            for part in ("generator", "discriminator", "ema_generator")
        }
        results[name]["replicas"] = strategy.num_replicas_in_sync
    report = {"replicas": results["mirrored"]["replicas"]}
    for part in ("generator", "discriminator", "ema_generator"):
        pairs = list(zip(results["one_device"][part], results["mirrored"][part]))
        report[part] = {
            "max_abs_diff": max(float(np.max(np.abs(a - b))) for a, b in pairs),
            "max_change": max(
                float(np.max(np.abs(a - b)))
                for a, b in zip(initial_parts[part], results["one_device"][part])
            ),
            "weights": len(pairs),
        }
    return report


def train_and_maybe_die(config_file: str, run_dir: str, args) -> None:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    from t2i_keras.config import Config
    from t2i_keras.training import backup
    from t2i_keras.training.trainer import train

    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if args.kill_after_step is not None:
        original_batch_end = backup.BackupEverySteps.on_train_batch_end

        def batch_end(self, batch, logs=None):
            original_batch_end(self, batch, logs)
            if self.step == args.kill_after_step:
                die()

        backup.BackupEverySteps.on_train_batch_end = batch_end
    if args.kill_in_backup is not None:
        import keras

        original_save_weights = keras.Model.save_weights

        def save_weights(self, path, *a, **k):
            original_save_weights(self, path, *a, **k)
            if backup_steps[0] == args.kill_in_backup:
                die()  # the weights file exists, the folder is not renamed into place yet

        original_backup_save = backup.TrainingBackup.save
        backup_steps = [None]

        def backup_save(self, step):
            backup_steps[0] = step
            return original_backup_save(self, step)

        keras.Model.save_weights = save_weights
        backup.TrainingBackup.save = backup_save
    if args.kill_in_model_save:
        import keras

        original_save = keras.Model.save

        def save(self, path, *a, **k):
            original_save(self, path, *a, **k)
            if str(path).endswith(".keras") and ".last." in os.path.basename(str(path)):
                with open(path, "r+b") as f:  # half-written, as a kill mid-write leaves it
                    f.truncate(os.path.getsize(path) // 2)
                die()

        keras.Model.save = save
    train(Config.load(config_file), run_dir, verbose=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    eq = sub.add_parser("equivalence")
    eq.add_argument("--steps", type=int, default=3)
    eq.add_argument("--precision", default="float32")
    tr = sub.add_parser("train")
    tr.add_argument("config")
    tr.add_argument("run_dir")
    tr.add_argument("--kill-after-step", type=int)
    tr.add_argument("--kill-in-backup", type=int)
    tr.add_argument("--kill-in-model-save", action="store_true")
    args = parser.parse_args()
    if args.mode == "equivalence":
        print(json.dumps(equivalence(args.steps, args.precision)))
    else:
        train_and_maybe_die(args.config, args.run_dir, args)


if __name__ == "__main__":
    main()
