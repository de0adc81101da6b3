"""Benchmark: GAN-INT-CLS training throughput (images/s), Keras `fit` vs a PyTorch version.

The PyTorch model below exists only for this benchmark: the same generator, matching-aware
discriminator and train step (D on real/wrong/fake, G on right and interpolated text, EMA), with
the same shapes. Each configuration runs in its own process (so the two frameworks' thread pools
never compete), the configurations are interleaved, and the median over repeats is reported.

    pip install torch==2.13.0   # a local CPU build on our machines; only for this benchmark
    .venv/bin/python scripts/bench_train_step.py [--repeats 3] [--steps 12] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

KERAS_SETTINGS = {
    "keras float32": {"precision": "float32", "jit": False},
    "keras float32 + XLA": {"precision": "float32", "jit": True},
    "keras mixed_bfloat16": {"precision": "mixed_bfloat16", "jit": False},
}
TORCH_SETTINGS = {
    "torch float32": {"bf16": False, "channels_last": False},
    "torch float32 channels-last": {"bf16": False, "channels_last": True},
    "torch bf16 autocast channels-last": {"bf16": True, "channels_last": True},
}


def keras_worker(args, setting) -> float:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    import numpy as np
    import tensorflow as tf

    from t2i_keras.data.pairs import add_gan_pairs
    from t2i_keras.models.discriminator import Discriminator
    from t2i_keras.models.gan import TextToImageGAN
    from t2i_keras.models.generator import Generator

    keras.mixed_precision.set_global_policy(setting["precision"])
    gan = TextToImageGAN(
        Generator(image_size=args.size, filters=args.filters, seed=0),
        Discriminator(image_size=args.size, filters=args.filters),
    )
    gan.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        jit_compile=setting["jit"],
    )
    rng = np.random.default_rng(0)
    n = args.batch * 4
    data = (
        tf.data.Dataset.from_tensor_slices(
            {
                "image": rng.uniform(-1, 1, (n, args.size, args.size, 3)).astype(np.float32),
                "embedding": rng.normal(size=(n, 512)).astype(np.float32),
                "class_id": (np.arange(n) % 8).astype(np.int32),
            }
        )
        .batch(args.batch, drop_remainder=True)
        .repeat()
    )
    # Wrong images, GAN-INT partners and noise are drawn in the input pipeline, as in training.
    data = data.enumerate().map(lambda i, b: add_gan_pairs(b, tf.stack([i, i]), 100)).prefetch(2)
    gan.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace, compile, warm up
    start = time.perf_counter()
    gan.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    return args.batch * args.steps / (time.perf_counter() - start)


def torch_worker(args, setting) -> float:
    import copy

    import torch
    from torch import nn

    torch.manual_seed(0)
    blocks = {32: 3, 64: 4, 128: 5, 256: 6}[args.size]
    f = args.filters
    widths = [min(f * 8, f * 2 ** (blocks - 1 - i)) for i in range(blocks)]

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.text = nn.Sequential(nn.Linear(512, 128), nn.LeakyReLU(0.2))
            self.seed = nn.Sequential(
                nn.Linear(228, 16 * widths[0], bias=False),
                nn.BatchNorm1d(16 * widths[0]),
                nn.ReLU(),
            )
            layers = []
            for c_in, c_out in zip(widths[:-1], widths[1:]):
                layers += [
                    nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(),
                ]
            layers += [nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1), nn.Tanh()]
            self.up = nn.Sequential(*layers)

        def forward(self, embeddings, noise):
            x = self.seed(torch.cat([self.text(embeddings), noise], 1))
            return self.up(x.view(-1, widths[0], 4, 4)).float()

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            down = widths[::-1]
            layers, c_in = [], 3
            for i, c in enumerate(down):
                layers += [nn.Conv2d(c_in, c, 4, 2, 1)]
                layers += [nn.BatchNorm2d(c)] if i else []
                layers += [nn.LeakyReLU(0.2)]
                c_in = c
            self.down = nn.Sequential(*layers)
            self.text = nn.Sequential(nn.Linear(512, 128), nn.LeakyReLU(0.2))
            self.joint = nn.Sequential(
                nn.Conv2d(c_in + 128, c_in, 1),
                nn.BatchNorm2d(c_in),
                nn.LeakyReLU(0.2),
                nn.Conv2d(c_in, 1, 4),
            )

        def forward(self, images, embeddings):
            x = self.down(images)
            text = self.text(embeddings)[:, :, None, None].expand(-1, -1, 4, 4)
            return self.joint(torch.cat([x, text.to(x.dtype)], 1)).float().view(-1)

    memory = torch.channels_last if setting["channels_last"] else torch.contiguous_format
    generator, discriminator = (
        Generator().to(memory_format=memory),
        Discriminator().to(memory_format=memory),
    )
    ema = copy.deepcopy(generator)
    d_opt = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    softplus = nn.functional.softplus
    n, b = args.batch * 4, args.batch
    images_all = (torch.rand(n, 3, args.size, args.size) * 2 - 1).contiguous(memory_format=memory)
    embeddings_all = torch.randn(n, 512)
    classes_all = torch.arange(n) % 8

    def step(i):
        sl = slice((i % 4) * b, (i % 4 + 1) * b)
        images, embeddings, classes = images_all[sl], embeddings_all[sl], classes_all[sl]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting["bf16"]):
            different = classes[:, None] != classes[None, :]
            scores = torch.where(different, torch.rand(b, b), torch.full((b, b), -1.0))
            wrong = images[scores.argmax(1)]
            mask = different.any(1).float()
            with torch.no_grad():
                fake = generator(embeddings, torch.randn(b, 100))
            real_l = discriminator(images, embeddings)
            wrong_l = discriminator(wrong, embeddings)
            fake_l = discriminator(fake.contiguous(memory_format=memory), embeddings)
            d_loss = (
                softplus(-real_l) + 0.5 * (mask * softplus(wrong_l) + softplus(fake_l))
            ).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting["bf16"]):
            fake = generator(embeddings, torch.randn(b, 100))
            g_loss = softplus(-discriminator(fake.contiguous(memory_format=memory), embeddings))
            mixed = 0.5 * embeddings + 0.5 * embeddings[torch.randperm(b)]
            mixed_images = generator(mixed, torch.randn(b, 100))
            g_loss = (
                g_loss
                + softplus(-discriminator(mixed_images.contiguous(memory_format=memory), mixed))
            ).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        with torch.no_grad():
            for e, w in zip(ema.parameters(), generator.parameters()):
                e.lerp_(w, 0.001)
            for e, w in zip(ema.buffers(), generator.buffers()):
                e.copy_(w)

    for i in range(3):
        step(i)
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    return args.batch * args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--filters", type=int, default=64, help="ngf = ndf")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    settings = {**KERAS_SETTINGS, **TORCH_SETTINGS}
    if args.worker:
        worker = keras_worker if args.worker.startswith("keras") else torch_worker
        print(json.dumps(worker(args, settings[args.worker])))
        return

    rates = {name: [] for name in settings}
    base = [
        sys.executable,
        __file__,
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
        "--size",
        str(args.size),
        "--filters",
        str(args.filters),
    ]
    for _ in range(args.repeats):
        for name in settings:
            result = subprocess.run(base + ["--worker", name], capture_output=True, text=True)
            if result.returncode:
                sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
            rates[name].append(json.loads(result.stdout.strip().splitlines()[-1]))
    best_torch = max(statistics.median(rates[n]) for n in TORCH_SETTINGS)
    print(
        f"{args.size}x{args.size}, ngf=ndf={args.filters}, batch {args.batch}, "
        f"{os.cpu_count()} cores, "
        f"median of {args.repeats} runs x {args.steps} steps"
    )
    print("| setting | images/s | vs best PyTorch |")
    print("|---|---:|---:|")
    for name in settings:
        rate = statistics.median(rates[name])
        print(f"| {name} | {rate:.1f} | {rate / best_torch:.2f}x |")


if __name__ == "__main__":
    main()
