"""Benchmark: the exported `serving_default` vs the bare generator, and with vs without its cache.

`serving_default` does what a served request costs: USE tokenization and encoding, noise, the EMA
generator and the uint8 conversion. The bare generator is the same Keras EMA generator in a
`tf.function`, fed embeddings computed beforehand. This comparison uses an export without the
caption cache, and the same captions on every call; a third export adds the caption snap
(`t2i_keras.text.anchors`, the run's training captions as anchors; for `--preset`, as many random
unit vectors as the quickstart's 16,017 captions).

The caption cache is measured on two exports of the same model, `caption_cache=0` and the default
capacity, sent the same stream of requests, interleaved request by request (each goes first every
other time). The mix: after an untimed warm-up request of new captions, every request at batch B
holds B/2 new captions (never sent before) and B/2 repeats drawn uniformly, with replacement,
from all the captions earlier requests sent; at batch 1, requests alternate between a new caption
and a repeat. Latencies at batch 1 are bimodal (a hit or a miss), so their mean is compared.

    .venv/bin/python benchmarks/bench_serving.py --run runs/quickstart [--calls 200] [--batch 64]
    .venv/bin/python benchmarks/bench_serving.py --preset flowers64   # untrained, same cost
"""

import argparse
import os
import statistics
import tempfile
import time

from machine import cpu_description  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WORDS = "this flower has petals that are pink yellow round pointed with a centre".split()


def new_captions(rng):
    """An endless stream of distinct random captions."""
    seen = set()
    while True:
        caption = " ".join(rng.choice(WORDS, size=rng.integers(6, 14)))
        if caption not in seen:
            seen.add(caption)
            yield caption


def mixed_requests(rng, captions, batch: int, count: int) -> list[list[str]]:
    """A warm-up request of new captions, then `count` requests with half repeats (module doc)."""
    sent = [next(captions) for _ in range(batch)]
    requests = [list(sent)]
    for i in range(count):
        repeats = batch // 2 if batch > 1 else i % 2
        fresh = [next(captions) for _ in range(batch - repeats)]
        request = fresh + [sent[j] for j in rng.integers(0, len(sent), repeats)]
        rng.shuffle(request)
        sent += fresh
        requests.append(request)
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run directory written by scripts/train.py")
    source.add_argument("--preset", help="an untrained model of this preset (speed only)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls at batch 1")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls at the large batch")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from t2i_keras.config import get_preset
    from t2i_keras.data.splits import load_split
    from t2i_keras.models.build import build_gan
    from t2i_keras.serving import export
    from t2i_keras.serving.caption_cache import DEFAULT_CAPACITY
    from t2i_keras.text.anchors import DEFAULT_SNAP_THRESHOLD, NearestCaptionSnap
    from t2i_keras.text.encoder import TextEncoder
    from t2i_keras.training.runs import load_run

    if args.run:
        gan, config = load_run(args.run)
    else:
        config = get_preset(args.preset)
        gan = build_gan(config, embedding_dim=512)
    encoder = TextEncoder(config.text_encoder)
    if args.run:
        anchors = load_split(config, "train", encoder).real_embeddings()
    else:
        anchors = np.random.default_rng(0).standard_normal((16_017, 512)).astype(np.float32)
    snap = NearestCaptionSnap.from_training_embeddings(anchors, DEFAULT_SNAP_THRESHOLD)
    with tempfile.TemporaryDirectory() as tmp:
        served = {
            capacity: export.load_saved_model(
                export.export_saved_model(
                    gan, encoder, f"{tmp}/cache{capacity}", caption_cache=capacity
                )
            ).signatures["serving_default"]
            for capacity in (0, DEFAULT_CAPACITY)
        }
        serving_default = served[0]
        snapped = export.load_saved_model(
            export.export_saved_model(
                gan, encoder, f"{tmp}/snap", caption_cache=0, caption_snap=snap
            )
        ).signatures["serving_default"]
        generator = gan.ema_generator
        bare = tf.function(lambda e, z: generator([e, z], training=False))

        rng = np.random.default_rng(0)
        captions = [
            " ".join(rng.choice(WORDS, size=rng.integers(6, 14))) for _ in range(args.batch)
        ]
        embeddings = encoder(tf.constant(captions))
        noise = tf.random.normal([args.batch, generator.z_dim])

        def timed(fn, n):
            fn()  # warm-up: traces and allocates
            fn()
            seconds = []
            for _ in range(n):
                start = time.perf_counter()
                fn()
                seconds.append(time.perf_counter() - start)
            return seconds

        def serve(batch, signature=serving_default):
            return lambda: signature(captions=tf.constant(captions[:batch]))["images"].numpy()

        def generate(batch):
            return lambda: bare(embeddings[:batch], noise[:batch]).numpy()

        paths = {
            "serving_default": serve,
            "serving_default + caption snap": lambda batch: serve(batch, snapped),
            "bare generator": generate,
        }
        latency = {name: [] for name in paths}
        throughput = {name: [] for name in paths}
        for _ in range(5):  # interleave them, so machine noise hits all alike
            for name, path in paths.items():
                latency[name] += timed(path(1), args.calls // 5)
                throughput[name] += timed(path(args.batch), max(1, args.repeats // 5))

        def mix_seconds(batch, count):
            """Seconds per request of each export on one stream of requests, interleaved."""
            seconds = {capacity: [] for capacity in served}
            stream = mixed_requests(rng, new_captions(rng), batch, count)
            for i, request in enumerate(stream):
                order = list(served) if i % 2 else list(served)[::-1]
                for capacity in order:
                    start = time.perf_counter()
                    served[capacity](captions=tf.constant(request))["images"].numpy()
                    if i:  # the first request (all new) is the warm-up
                        seconds[capacity].append(time.perf_counter() - start)
            return seconds

        mix_latency = mix_seconds(1, args.calls)
        mix_throughput = mix_seconds(args.batch, args.repeats)

    size = config.data.image_size
    print(f"Machine: {cpu_description()}")
    print(f"{size}x{size} images, {gan.generator.filters} generator filters")
    print(f"| path | batch 1 p50 (ms) | batch 1 p99 (ms) | batch {args.batch} images/s |")
    print("|---|---:|---:|---:|")
    rates = {}
    for name in latency:
        ms = np.asarray(latency[name]) * 1e3
        rates[name] = args.batch / statistics.median(throughput[name])
        print(
            f"| {name} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} | "
            f"{rates[name]:,.0f} |"
        )
    overhead = rates["bare generator"] / rates["serving_default"] - 1
    print(
        f"text encoding + pre/post-processing cost {overhead:.0%} at batch {args.batch} "
        "(goal: at most 20%)"
    )
    snap_cost = rates["serving_default"] / rates["serving_default + caption snap"] - 1
    print(
        f"the caption snap ({snap.num_anchors:,} anchors) costs {snap_cost:.0%} "
        f"at batch {args.batch}"
    )

    print(
        f"\n`serving_default`, half the captions repeated ({args.calls} requests at batch 1, "
        f"{args.repeats} at batch {args.batch}):"
    )
    print(
        f"| caption cache | batch 1 mean (ms) | batch 1 p50 (ms) | batch 1 p99 (ms) "
        f"| batch {args.batch} images/s |"
    )
    print("|---|---:|---:|---:|---:|")
    means, mix_rates = {}, {}
    for capacity in served:
        ms = np.asarray(mix_latency[capacity]) * 1e3
        means[capacity] = ms.mean()
        mix_rates[capacity] = args.batch / statistics.median(mix_throughput[capacity])
        print(
            f"| {capacity or 'off'} | {means[capacity]:.2f} | {np.percentile(ms, 50):.2f} | "
            f"{np.percentile(ms, 99):.2f} | {mix_rates[capacity]:,.0f} |"
        )
    print(
        f"the cache is {means[0] / means[DEFAULT_CAPACITY]:.2f}x as fast at batch 1 and "
        f"{mix_rates[DEFAULT_CAPACITY] / mix_rates[0]:.2f}x at batch {args.batch} "
        "(goal: at least 1.5x)"
    )


if __name__ == "__main__":
    main()
