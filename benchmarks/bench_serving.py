"""Benchmark: the exported `serving_default` signature vs the bare generator on embeddings.

`serving_default` does what a served request costs: USE tokenization and encoding, noise, the EMA
generator and the uint8 conversion. The bare generator is the same Keras EMA generator in a
`tf.function`, fed embeddings computed beforehand. Calls are interleaved; medians are reported.

    .venv/bin/python scripts/bench_serving.py --run runs/quickstart [--calls 200] [--batch 64]
    .venv/bin/python scripts/bench_serving.py --preset flowers64   # untrained, same cost
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    from t2i_keras.models.build import build_gan
    from t2i_keras.serving import export
    from t2i_keras.text.encoder import TextEncoder
    from t2i_keras.training.runs import load_run

    if args.run:
        gan, config = load_run(args.run)
    else:
        config = get_preset(args.preset)
        gan = build_gan(config, embedding_dim=512)
    encoder = TextEncoder(config.text_encoder)
    with tempfile.TemporaryDirectory() as tmp:
        served = export.load_saved_model(export.export_saved_model(gan, encoder, f"{tmp}/model"))
        serving_default = served.signatures["serving_default"]
        generator = gan.ema_generator
        bare = tf.function(lambda e, z: generator([e, z], training=False))

        words = "this flower has petals that are pink yellow round pointed with a centre".split()
        rng = np.random.default_rng(0)
        captions = [
            " ".join(rng.choice(words, size=rng.integers(6, 14))) for _ in range(args.batch)
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

        def serve(batch):
            return lambda: serving_default(captions=tf.constant(captions[:batch]))["images"].numpy()

        def generate(batch):
            return lambda: bare(embeddings[:batch], noise[:batch]).numpy()

        latency = {"serving_default": [], "bare generator": []}
        throughput = {"serving_default": [], "bare generator": []}
        for _ in range(5):  # interleave the two, so machine noise hits both alike
            latency["serving_default"] += timed(serve(1), args.calls // 5)
            latency["bare generator"] += timed(generate(1), args.calls // 5)
            throughput["serving_default"] += timed(serve(args.batch), max(1, args.repeats // 5))
            throughput["bare generator"] += timed(generate(args.batch), max(1, args.repeats // 5))

    size = config.data.image_size
    print(
        f"{size}x{size} images, {gan.generator.filters} generator filters, {os.cpu_count()} cores"
    )
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


if __name__ == "__main__":
    main()
