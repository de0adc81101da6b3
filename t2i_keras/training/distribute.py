"""Which `tf.distribute` strategy a run uses, who writes files, and Keras 3.15's multi-worker fixes.

`choose_strategy("auto")`: `TF_CONFIG` set -> `MultiWorkerMirroredStrategy` (one process per
machine, all-reduce over the network); several GPUs -> `MirroredStrategy`; else the default
strategy. The batch size in the config is always the global batch; `fit` splits it.

Under several workers every process runs the same `fit` and every process must take part in
saving (reading mirrored and sync-on-read variables is collective), but only the chief's files
are kept: the others write into temporary folders (`worker_dir`), as TF's multi-worker guide says.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

from t2i_keras.config import STRATEGIES


def choose_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The strategy for `kind` (one of `STRATEGIES`); "auto" picks as the module docstring says."""
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; use one of {STRATEGIES}")
    if kind == "auto":
        if os.environ.get("TF_CONFIG"):
            kind = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    # Keras 3.15's `fit` needs two fixes under a distributed strategy (see the function).
    install_keras_workarounds()
    if kind == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    # Without GPUs (tests, or CPU machines split into logical devices), mirror over the CPUs.
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def describe(strategy: tf.distribute.Strategy, precision: str) -> str:
    """One line for the log: the devices, the strategy and the precision a run uses."""
    if strategy is tf.distribute.get_strategy():
        gpus = tf.config.list_logical_devices("GPU")
        where = f"GPU ({gpus[0].name})" if gpus else "the CPU (no GPU found)"
        return f"Training on {where}, default strategy (1 replica), precision {precision}"
    devices = strategy.extended.worker_devices
    kinds = sorted({name.rsplit("/", 1)[-1].split(":")[1] for name in devices})
    return (
        f"Training on {len(devices)} {'/'.join(kinds)} device(s) of this process, "
        f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} replicas in all), "
        f"precision {precision}"
    )


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "--strategy multi_worker needs TF_CONFIG: a JSON cluster spec and this process's task, "
            'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(raw)
        config["cluster"]["worker"], config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG is not a valid cluster spec ({error!r}): it needs cluster.worker (a list "
            'of "host:port") and task.type / task.index'
        ) from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process whose files are kept (always true on a single machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def worker_dir(run_dir: str | os.PathLike, strategy: tf.distribute.Strategy) -> pathlib.Path:
    """`run_dir` for the chief; a fresh temporary folder for every other worker."""
    if is_chief(strategy):
        return pathlib.Path(run_dir)
    resolver = strategy.cluster_resolver
    return pathlib.Path(tempfile.mkdtemp(prefix=f"t2i_{resolver.task_type}{resolver.task_id}_"))


def default_precision() -> str:
    """What `--precision auto` picks on this machine (`precision_for_hardware` decides)."""
    return precision_for_hardware(gpu_compute_capabilities(), cpuinfo())


def precision_for_hardware(gpu_capabilities: list[tuple[int, int] | None], cpu_flags: str) -> str:
    """mixed_bfloat16 where the hardware computes bf16 natively, else float32.

    With GPUs, bf16 only if every GPU has compute capability 8.0 or more (Ampere on): one policy
    runs on all replicas, and Volta/Turing (7.x) have no bf16 tensor cores. A GPU that reports no
    capability counts as one without. Never mixed_float16, though Volta/Turing run float16 on
    their tensor cores: it needs loss scaling, and no GAN here has been trained with it beyond a
    few test steps, so it is the user's choice (`--precision mixed_float16`). Without GPUs, bf16
    on CPUs with AVX512-BF16 or AMX; elsewhere bf16 is emulated and slower than float32 (measured
    in benchmarks/bench_train_step.py).

    Args:
        gpu_capabilities: one (major, minor) compute capability per GPU (None where unknown);
            empty without GPUs.
        cpu_flags: text holding the CPU's feature flags, such as /proc/cpuinfo's.
    """
    if gpu_capabilities:
        ampere = all(c is not None and tuple(c) >= (8, 0) for c in gpu_capabilities)
        return "mixed_bfloat16" if ampere else "float32"
    flags = set(cpu_flags.split())
    return "mixed_bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


def gpu_compute_capabilities() -> list[tuple[int, int] | None]:
    """The compute capability of each GPU TensorFlow sees (None where it reports none)."""
    return [
        tf.config.experimental.get_device_details(gpu).get("compute_capability")
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def cpuinfo() -> str:
    """/proc/cpuinfo's text, which lists the CPU's feature flags ("" where it is absent)."""
    try:
        return pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def install_keras_workarounds() -> None:
    """Makes Keras 3.15's `fit` work under MultiWorkerMirroredStrategy (idempotent).

    `choose_strategy` applies it whenever it picks a distributed strategy; code that builds its own
    strategy calls it before `fit`. It patches Keras' TensorFlow trainer for the whole process.

    1. `TensorFlowTrainer._maybe_symbolic_build` pulls one batch off the training iterator
       whenever a strategy is set and reduces it with `strategy.reduce("MEAN", batch)`: under
       MultiWorkerMirroredStrategy that fails on a dict of PerReplica values
       (keras-team/keras#20585), and under any strategy it silently skips the first batch. A
       model that builds all its weights and optimizers itself (`builds_all_state = True`:
       TextToImageGAN does so in `__init__` and `compile`) needs no symbolic build, so we skip it
       for such models.
    2. `reduce_per_replica` reduces the step's logs with `strategy.reduce("MEAN", v, axis=0)` on
       multi-worker strategies, which fails for scalar metric values; we reduce scalars with
       `axis=None` (the mean over replicas).
    tests/training/test_distribute.py runs two workers through `fit` and fails if either regresses.
    """
    if getattr(tf_trainer, "_t2i_workarounds", False):
        return
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self.built and getattr(self, "builds_all_state", False):
            return
        original_build(self, iterator=iterator, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0), values
            )
        return original_reduce(values, strategy, reduction)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer._t2i_workarounds = True
