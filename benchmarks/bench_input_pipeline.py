"""Benchmark: input pipeline throughput (images/s), decoding image files vs the prepared cache.

(a) raw: read + decode + resize + flip + batch from the original files on every visit
    (`streaming.raw_image_dataset`); (b) cached: parse + flip + batch the prepared TFRecords, with
    caption sampling (`streaming.prepared_training_dataset`). Each measurement builds a fresh
    pipeline, warms it up with a few batches (tracing, file handles, shuffle buffer), then times
    `--batches` batches; the two paths are interleaved and the median over repeats is reported.

    .venv/bin/python scripts/bench_input_pipeline.py                # ../shared/data/coco-mini
    .venv/bin/python scripts/bench_input_pipeline.py --dataset oxford102 --data-dir data/oxford102
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from machine import cpu_description  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "coco-mini")


def images_per_second(dataset, batches: int, batch_size: int, warmup: int = 3) -> float:
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    from t2i_keras.data import prepared, streaming
    from t2i_keras.data.kinds import REAL_DATASETS, RESIZE_POLICIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="coco", choices=REAL_DATASETS)
    parser.add_argument("--data-dir", default=os.path.normpath(DEFAULT_DATA))
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--resize-policy", default="center_crop", choices=RESIZE_POLICIES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--text-encoder", default="builtin")
    args = parser.parse_args()

    source = prepared.read_source(args.dataset, args.data_dir, args.split, args.resize_policy)
    cache = prepared.prepare_dataset(
        args.dataset,
        args.data_dir,
        args.split,
        args.image_size,
        encoder=args.text_encoder,
        resize_policy=args.resize_policy,
    )
    pipelines = {
        "raw files": lambda seed: streaming.raw_image_dataset(
            source, args.image_size, args.resize_policy, args.batch_size, seed=seed
        ),
        "prepared TFRecords": lambda seed: streaming.prepared_training_dataset(
            cache, args.batch_size, seed=seed
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    for repeat in range(args.repeats):
        for name, build in pipelines.items():
            rates[name].append(images_per_second(build(repeat), args.batches, args.batch_size))

    print(
        f"\n{args.dataset} {args.split}: {cache.num_examples} images at "
        f"{args.image_size}x{args.image_size}, batch {args.batch_size}, {args.batches} batches x "
        f"{args.repeats} repeats, {os.cpu_count()} CPUs"
    )
    print(f"Machine: {cpu_description()}")
    print(f"{'path':<20} {'median img/s':>13} {'min':>9} {'max':>9}")
    for name, values in rates.items():
        print(
            f"{name:<20} {statistics.median(values):>13.0f} {min(values):>9.0f} {max(values):>9.0f}"
        )
    speedup = statistics.median(rates["prepared TFRecords"]) / statistics.median(rates["raw files"])
    print(f"cached / raw: {speedup:.1f}x")


if __name__ == "__main__":
    main()
