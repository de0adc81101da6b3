"""Benchmark: training images/s through `fit` by number of replicas and by precision.

Replicas are logical CPU devices under MirroredStrategy (the same code path as several GPUs);
one replica is the default strategy. Each setting runs in its own process (devices are fixed at
TensorFlow's start), settings are interleaved, and the median over repeats is reported.

    .venv/bin/python scripts/bench_distribute.py [--repeats 3] [--steps 10] [--size 32]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

from machine import cpu_description  # benchmarks/ is on sys.path when a script runs

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def worker(args) -> float:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf

    if args.replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.replicas
        )
    import keras
    import numpy as np

    from t2i_keras import config as t2i_config
    from t2i_keras.data.pipeline import training_dataset
    from t2i_keras.models.build import build_gan
    from t2i_keras.training import distribute
    from t2i_keras.training.trainer import compile_gan

    config = t2i_config.get_preset("quickstart")
    config.data.image_size = args.size
    config.train.precision = args.precision
    keras.mixed_precision.set_global_policy(args.precision)
    strategy = distribute.choose_strategy("mirrored" if args.replicas > 1 else "default")
    with strategy.scope():
        gan = compile_gan(build_gan(config, 512), config, steps_per_epoch=args.steps)
    rng = np.random.default_rng(0)
    n = 1024
    data = training_dataset(
        rng.integers(0, 255, (n, args.size, args.size, 3), dtype=np.uint8),
        rng.normal(size=(n, 2, 512)).astype(np.float32),
        (np.arange(n) % 8).astype(np.int32),
        batch_size=args.batch,
    )
    gan.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    gan.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    return args.batch * args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replicas:
        print(json.dumps(worker(args)))
        return

    settings = list(itertools.product((1, 2), PRECISIONS))
    rates = {s: [] for s in settings}
    for _ in range(args.repeats):
        for replicas, precision in settings:
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--replicas",
                    str(replicas),
                    "--precision",
                    precision,
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                    "--size",
                    str(args.size),
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode:
                sys.exit(f"{replicas} x {precision} failed:\n{result.stderr[-3000:]}")
            rates[(replicas, precision)].append(json.loads(result.stdout.strip().splitlines()[-1]))
    base = statistics.median(rates[(1, "float32")])
    print(
        f"quickstart model at {args.size}x{args.size}, global batch {args.batch}, "
        f"{os.cpu_count()} cores, median of {args.repeats} runs x {args.steps} steps"
    )
    print(f"Machine: {cpu_description()}")
    print("| replicas | precision | images/s | vs 1 replica float32 |")
    print("|---:|---|---:|---:|")
    for (replicas, precision), values in rates.items():
        rate = statistics.median(values)
        print(f"| {replicas} | {precision} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
