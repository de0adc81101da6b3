"""Benchmark: GAN-INT-CLS training step, Keras `fit` vs PyTorch: time, FLOPs, % of roofline.

What runs, each setting in its own process (so frameworks' thread pools never compete), the
settings interleaved, `--repeats` times:

- `keras ...`: the package's own step (`TextToImageGAN.train_step` through `fit`), built from the
  `flowers64` preset (Reed's 64x64 DCGAN networks, ngf = ndf = 64) or, with `--architecture
  dfgan`, from `dfgan_flowers64` (deep-fusion generator, residual discriminator, hinge loss and
  MA-GP, nf = 32). A warm-up `fit` traces the step, then a second `fit` is timed, as a user who
  calls `fit` twice in a notebook would run it.
- `torch ...`: the DCGAN networks and step re-implemented in PyTorch for this benchmark only:
  one generator pass for the fake and one for the GAN-INT fake serve both updates (as the Keras
  step does), D on real/wrong/fake, G on right and interpolated text, EMA.
- `peer ...` (with `--peer-dir`): the public PyTorch GAN-CLS of aelnouby/Text-to-Image-Synthesis,
  its own `models/gan_cls.py` networks (fixed at 64x64, ngf = ndf = 64, 1024-d embeddings) and
  the step of its `trainer.py` (`Trainer._train_gan` with `cls=True`), restated in `peer_step`.
  Point it at a checkout:

      git clone https://github.com/aelnouby/Text-to-Image-Synthesis /path/to/peer
      .venv/bin/python benchmarks/bench_train_step.py --peer-dir /path/to/peer

  Its `utils.py` imports `visualize.py` for the Visdom logger, which needs `visdom` and
  `torchvision`; where they are missing a stand-in `visualize` module (whose `VisdomPlotter`
  raises when used) is registered, since the step never logs.

Every step is timed: for Keras by a callback from one batch's start to the next's (it overrides
no batch-end hook, so Keras dispatches logs exactly as in a plain `fit`), for PyTorch around each
step. A run's number is the median of its steps; the table gives the median over runs and the
spread of the runs' medians (min-max and max/min), which should stay under 1.05.

FLOPs per image are counted, once per network and step, on the graph that runs: the Keras step's
traced graph op by op (`benchmarks/flops.py`, TensorFlow's profiler statistics, pruned to the ops
that run), the PyTorch steps with `torch.utils.flop_counter.FlopCounterMode`. Both count
convolutions and matrix products (forward and backward) at 2 FLOPs per multiply-add, the work a
matmul peak bounds; elementwise ops are left out of the column (their share is printed). The
two counters check each other: on the DCGAN step, the Keras graph's count and FlopCounterMode's
on the PyTorch re-implementation must agree (the output prints their ratio).
% of roofline = FLOP/image x images/s / the machine's float32 matmul peak (2048x2048 on all
cores, median of 5, the better of PyTorch and TensorFlow). "vs best PyTorch" divides images/s by
the best of the PyTorch re-implementation's settings (DCGAN rows only). bf16 settings are skipped
on CPUs without AVX512-BF16 or AMX unless named with --settings: there bf16 is emulated (PyTorch's
bf16 matmul runs at about 1 GFLOP/s on AVX2).

Threads: TensorFlow's defaults (inter-op and intra-op pools of one thread per core; --inter-op
and --intra-op change them for the Keras workers), PyTorch's (one thread per core). On another
machine half of the `keras float32` processes ran every step 1.5x slower. On the 2-core AVX2
EPYC here 7 such processes ran at 6.87-7.33 s/step (64x64, batch 64), none slow; each warm-up
fit's steady steps took what the timed second fit's did (Keras 3 keeps `train_function` and
retraces nothing for the second fit's new iterator), and one inter-op thread, which keeps the
step's independent discriminator passes from running side by side, was no faster (7.6 s/step).

    pip install torch==2.13.0   # a local CPU build on our machines; only for this benchmark
    .venv/bin/python benchmarks/bench_train_step.py [--repeats 3] [--steps 12] [--batch 64] \\
        [--architecture dcgan dfgan] [--peer-dir PATH] [--settings NAME ...] [--inter-op N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types

from machine import cpu_description  # benchmarks/ is on sys.path when a script runs

PRESETS = {"dcgan": "flowers64", "dfgan": "dfgan_flowers64"}
PRECISIONS = {
    "float32": {"precision": "float32", "jit": False},
    "float32 + XLA": {"precision": "float32", "jit": True},
    "mixed_bfloat16": {"precision": "mixed_bfloat16", "jit": False},
}
KERAS_SETTINGS = {
    f"{'' if arch == 'dcgan' else 'dfgan '}keras {name}": {
        "kind": "keras",
        "architecture": arch,
        **precision,
    }
    for arch in PRESETS
    for name, precision in PRECISIONS.items()
}
TORCH_SETTINGS = {
    "torch float32": {"kind": "torch", "bf16": False, "channels_last": False},
    "torch float32 channels-last": {"kind": "torch", "bf16": False, "channels_last": True},
    "torch bf16 autocast channels-last": {"kind": "torch", "bf16": True, "channels_last": True},
}
PEER_SETTINGS = {
    "peer (aelnouby) float32": {"kind": "peer", "channels_last": False},
    "peer (aelnouby) float32 channels-last": {"kind": "peer", "channels_last": True},
}
SETTINGS = {**KERAS_SETTINGS, **TORCH_SETTINGS, **PEER_SETTINGS}
# The peer's networks are fixed at these (models/gan_cls.py).
PEER_SIZE, PEER_FILTERS, PEER_EMBEDDING = 64, 64, 1024


def filters_for(args, architecture: str) -> int:
    """--filters, or the architecture's own width: Reed's ngf = ndf = 64, DF-GAN's nf = 32."""
    return args.filters or {"dcgan": 64, "dfgan": 32}[architecture]


def batch_for(args, architecture: str) -> int:
    """--batch, or the architecture's preset's: Reed's 64, DF-GAN's 32."""
    return args.batch or {"dcgan": 64, "dfgan": 32}[architecture]


def architecture_of(name: str) -> str:
    """The networks a setting trains (the PyTorch ones are all DCGANs)."""
    return SETTINGS[name].get("architecture", "dcgan")


# ---------------------------------------------------------------------------------------------
# Keras


def keras_setup(args, setting):
    """The package's GAN for the setting, compiled as `t2i_keras.train` compiles it, and an
    endless dataset of random batches with the pairs the train step needs."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf

    # Before anything runs: TensorFlow fixes its thread pools on first use.
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)

    import dataclasses

    import keras
    import numpy as np

    from t2i_keras.config import get_preset
    from t2i_keras.data.pairs import add_gan_pairs
    from t2i_keras.models.build import build_gan
    from t2i_keras.training.trainer import compile_gan

    config = get_preset(PRESETS[setting["architecture"]])
    filters = filters_for(args, setting["architecture"])
    batch = batch_for(args, setting["architecture"])
    config.data.image_size = args.size
    config.model = dataclasses.replace(
        config.model, generator_filters=filters, discriminator_filters=filters
    )
    config.train = dataclasses.replace(
        config.train,
        batch_size=batch,
        precision=setting["precision"],
        jit_compile=setting["jit"],
    )
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(setting["precision"])
    gan = compile_gan(build_gan(config, 512), config, steps_per_epoch=1000)
    rng = np.random.default_rng(0)
    n = batch * 4
    data = (
        tf.data.Dataset.from_tensor_slices(
            {
                "image": rng.uniform(-1, 1, (n, args.size, args.size, 3)).astype(np.float32),
                "embedding": rng.normal(size=(n, 512)).astype(np.float32),
                "class_id": (np.arange(n) % 8).astype(np.int32),
            }
        )
        .batch(batch, drop_remainder=True)
        .repeat()
    )
    # Wrong images, GAN-INT partners and noise are drawn in the input pipeline, as in training.
    data = data.enumerate().map(lambda i, b: add_gan_pairs(b, tf.stack([i, i]), config.model.z_dim))
    return gan, data


def keras_worker(args, setting) -> dict:
    import keras

    gan, data = keras_setup(args, setting)

    class StepTimes(keras.callbacks.Callback):
        """Seconds from each batch's start to the next's (the last one's to the epoch's end).

        Only `on_train_batch_begin` and `on_epoch_end` are overridden: overriding a batch-end
        hook makes Keras call batch ends synchronously instead of on its callback thread
        (`CallbackList._configure_async_dispatch`), which would change the loop it measures.
        """

        def __init__(self):
            super().__init__()
            self.starts, self.seconds = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.starts.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            ends = self.starts[1:] + [time.perf_counter()]
            self.seconds += [end - start for start, end in zip(self.starts, ends)]
            self.starts = []

    data = data.prefetch(2)
    warmup, timed = StepTimes(), StepTimes()
    gan.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0, callbacks=[warmup])
    with process_usage() as usage:
        gan.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[timed])
    return {"steps": timed.seconds, "warmup": warmup.seconds, "threads": tf_threads(), **usage}


@contextlib.contextmanager
def process_usage():
    """The process's user and system CPU seconds and minor page faults over the block (what
    tells a thread pool's oversubscription or an allocator's fresh pages from slower maths)."""
    before, start, usage = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), {}
    yield usage
    after = resource.getrusage(resource.RUSAGE_SELF)
    usage.update(
        wall=time.perf_counter() - start,
        user=after.ru_utime - before.ru_utime,
        system=after.ru_stime - before.ru_stime,
        minor_faults=after.ru_minflt - before.ru_minflt,
    )


def tf_threads() -> str:
    import tensorflow as tf

    inter = tf.config.threading.get_inter_op_parallelism_threads()
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    return f"TF inter-op {inter or 'default'}, intra-op {intra or 'default'}"


def keras_flops(args, setting) -> dict:
    """The step's FLOPs counted on its traced graph (the train step `fit` runs, one batch)."""
    import flops
    import tensorflow as tf

    gan, data = keras_setup(args, setting)
    graph = tf.function(gan.train_step).get_concrete_function(data.element_spec).graph
    counted = flops.count_graph_flops(graph)
    if counted.calls:
        # Their bodies would go uncounted; the step has none today and must not hide any.
        raise RuntimeError(f"the step calls functions whose FLOPs go uncounted: {counted.calls}")
    return {
        "contraction": counted.contraction,
        "total": counted.total,
        "pruned": sum(counted.dead.values()),
        "profiler": flops.profiler_flops(graph),
        "by_type": counted.by_type,
        "batch": batch_for(args, setting["architecture"]),
    }


# ---------------------------------------------------------------------------------------------
# PyTorch: our re-implementation


def torch_step(args, setting):
    """One GAN-INT-CLS step of the DCGAN networks in PyTorch, as a function of the step index."""
    import copy

    import torch
    from torch import nn

    torch.manual_seed(0)
    blocks = {16: 2, 32: 3, 64: 4, 128: 5, 256: 6}[args.size]
    f = filters_for(args, "dcgan")
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
    b = batch_for(args, "dcgan")
    n = 4 * b
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
            # One pass per fake serves both updates (Reed Alg. 1), as in TextToImageGAN.
            fake = generator(embeddings, torch.randn(b, 100)).contiguous(memory_format=memory)
            mixed = 0.5 * embeddings + 0.5 * embeddings[torch.randperm(b)]
            mixed_images = generator(mixed, torch.randn(b, 100)).contiguous(memory_format=memory)
            real_l = discriminator(images, embeddings)
            wrong_l = discriminator(wrong, embeddings)
            fake_l = discriminator(fake.detach(), embeddings)
            d_loss = (
                softplus(-real_l) + 0.5 * (mask * softplus(wrong_l) + softplus(fake_l))
            ).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        # Only G's gradients: D's would be computed for nothing (the Keras step's graph has none).
        discriminator.requires_grad_(False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting["bf16"]):
            g_loss = (
                softplus(-discriminator(fake, embeddings))
                + softplus(-discriminator(mixed_images, mixed))
            ).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        discriminator.requires_grad_(True)
        with torch.no_grad():
            for e, w in zip(ema.parameters(), generator.parameters()):
                e.lerp_(w, 0.001)
            for e, w in zip(ema.buffers(), generator.buffers()):
                e.copy_(w)

    return step


# ---------------------------------------------------------------------------------------------
# PyTorch: the public peer


def import_peer(peer_dir: str):
    """The peer's `models.gan_cls` and `utils` modules, imported from its checkout."""
    import importlib

    if not os.path.isfile(os.path.join(peer_dir, "models", "gan_cls.py")):
        sys.exit(f"--peer-dir {peer_dir}: no models/gan_cls.py (not a Text-to-Image-Synthesis)")
    sys.path.insert(0, os.path.abspath(peer_dir))
    try:
        importlib.import_module("visualize")
    except ImportError:  # visdom or torchvision missing: only its logger needs them

        class VisdomPlotter:
            def __init__(self, *args, **kwargs):
                raise RuntimeError("the benchmark's stand-in for the peer's Visdom plotter")

        sys.modules["visualize"] = types.ModuleType("visualize")
        sys.modules["visualize"].VisdomPlotter = VisdomPlotter
    return importlib.import_module("models.gan_cls"), importlib.import_module("utils")


def peer_step(args, setting):
    """The peer's GAN-CLS step, restated from its trainer.py (`Trainer._train_gan`, cls=True).

    Our wording of what that loop body does, on its own networks (`generator`, `discriminator`
    of models/gan_cls.py, initialized with its `Utils.weights_init`, Adam 2e-4 with beta1 0.5):

    - D step: `discriminator.zero_grad()`; D(right image, right text) against one-sided smoothed
      labels (0.9, `Utils.smooth_label(.., -0.1)`); D(wrong image, right text) against 0; a fake
      G(right text, z), *not* detached, D(fake, right text) against 0; BCE (D ends in a sigmoid)
      summed; `backward()` (which also back-propagates through the generator), `optimD.step()`.
    - G step: `generator.zero_grad()`; a new fake; D(fake) and its 4x4 features; D(real) for its
      features only (detached); loss = BCE(D(fake), 1) + l2_coef (100) x MSE of the batch-mean
      features + l1_coef (50) x L1(fake, real image), the defaults of its runtime.py;
      `backward()` (which also fills D's gradients, cleared at the next D step), `optimG.step()`.

    Changes for a CPU benchmark only: no `DataParallel`/`.cuda()`/`Variable`, random data in
    memory instead of its HDF5 loader, and no logging.
    """
    import torch
    from torch import nn

    gan_cls, peer_utils = import_peer(args.peer_dir)
    torch.manual_seed(0)
    memory = torch.channels_last if setting["channels_last"] else torch.contiguous_format
    generator, discriminator = gan_cls.generator(), gan_cls.discriminator()
    generator.apply(peer_utils.Utils.weights_init)
    discriminator.apply(peer_utils.Utils.weights_init)
    generator, discriminator = (
        generator.to(memory_format=memory),
        discriminator.to(memory_format=memory),
    )
    optim_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optim_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce, mse, l1 = nn.BCELoss(), nn.MSELoss(), nn.L1Loss()
    l1_coef, l2_coef = 50.0, 100.0
    b = batch_for(args, "dcgan")
    n = 4 * b
    images_all = torch.rand(n, 3, PEER_SIZE, PEER_SIZE) * 2 - 1
    images_all = images_all.contiguous(memory_format=memory)
    embeddings_all = torch.randn(n, PEER_EMBEDDING)
    real_labels, fake_labels = torch.ones(b), torch.zeros(b)
    smoothed_real_labels = real_labels - 0.1

    def step(i):
        sl = slice((i % 4) * b, (i % 4 + 1) * b)
        right_images, right_embed = images_all[sl], embeddings_all[sl]
        wrong_images = torch.roll(right_images, 1, 0)  # its loader draws another class's image

        discriminator.zero_grad()
        outputs, _ = discriminator(right_images, right_embed)
        d_loss = bce(outputs, smoothed_real_labels)
        outputs, _ = discriminator(wrong_images, right_embed)
        d_loss = d_loss + bce(outputs, fake_labels)
        fake_images = generator(right_embed, torch.randn(b, 100, 1, 1))
        outputs, _ = discriminator(fake_images.contiguous(memory_format=memory), right_embed)
        d_loss = d_loss + bce(outputs, fake_labels)
        d_loss.backward()
        optim_d.step()

        generator.zero_grad()
        fake_images = generator(right_embed, torch.randn(b, 100, 1, 1))
        outputs, activation_fake = discriminator(
            fake_images.contiguous(memory_format=memory), right_embed
        )
        _, activation_real = discriminator(right_images, right_embed)
        g_loss = (
            bce(outputs, real_labels)
            + l2_coef * mse(activation_fake.mean(0), activation_real.mean(0).detach())
            + l1_coef * l1(fake_images, right_images)
        )
        g_loss.backward()
        optim_g.step()

    return step


def torch_worker(args, setting) -> dict:
    import torch

    step = (peer_step if setting["kind"] == "peer" else torch_step)(args, setting)
    for i in range(args.warmup):
        step(i)
    seconds = []
    with process_usage() as usage:
        for i in range(args.steps):
            start = time.perf_counter()
            step(i)
            seconds.append(time.perf_counter() - start)
    threads = f"torch {torch.get_num_threads()} threads"
    return {"steps": seconds, "warmup": [], "threads": threads, **usage}


def torch_flops(args, setting) -> dict:
    """One step's FLOPs as `FlopCounterMode` counts them (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = (peer_step if setting["kind"] == "peer" else torch_step)(args, setting)
    counter = FlopCounterMode(display=False)
    with counter:
        step(0)
    by_op = {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    batch = batch_for(args, "dcgan")
    return {"contraction": counter.get_total_flops(), "by_type": by_op, "batch": batch}


# ---------------------------------------------------------------------------------------------
# The machine's matmul peak


def peak_worker(framework: str) -> dict:
    """GFLOP/s of a float32 2048x2048 matmul on all cores (median of 5 after 2 warm-ups), and of
    a bfloat16 512x512 one for information (median of 3 after 1: without AVX512-BF16 or AMX,
    PyTorch's runs below 1 GFLOP/s, and a 2048 one would take half a minute each)."""

    def rate(run, n, warmups, repeats) -> float:
        for _ in range(warmups):
            run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return 2 * n**3 / statistics.median(times) / 1e9

    cases = (("float32", 2048, 2, 5), ("bfloat16", 512, 1, 3))
    result = {}
    if framework == "torch":
        import torch

        torch.set_num_threads(os.cpu_count())
        for dtype, n, warmups, repeats in cases:
            a, b = (torch.randn(n, n, dtype=getattr(torch, dtype)) for _ in range(2))
            result[f"torch {dtype} {n}"] = rate(lambda: torch.mm(a, b), n, warmups, repeats)
        return result
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf

    for dtype, n, warmups, repeats in cases:
        a, b = (tf.random.normal((n, n), dtype=getattr(tf, dtype)) for _ in range(2))
        # .numpy() waits for the result, whatever the executor's mode.
        result[f"tensorflow {dtype} {n}"] = rate(
            lambda: tf.linalg.matmul(a, b).numpy(), n, warmups, repeats
        )
    return result


# ---------------------------------------------------------------------------------------------
# Driver


def run_worker(args, worker: str, *extra: str) -> dict:
    command = [sys.executable, __file__, "--worker", worker, *extra]
    for flag in ("steps", "warmup", "batch", "size", "filters", "inter_op", "intra_op"):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag.replace('_', '-')}", str(value)]
    if args.peer_dir:
        command += ["--peer-dir", args.peer_dir]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{worker} {' '.join(extra)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def chosen_settings(args) -> list[str]:
    if args.settings:
        unknown = sorted(set(args.settings) - set(SETTINGS))
        if unknown:
            sys.exit(f"unknown settings {unknown}; choose from {sorted(SETTINGS)}")
        return args.settings
    names = []
    if "dcgan" in args.architecture:
        names += [n for n, s in KERAS_SETTINGS.items() if s["architecture"] == "dcgan"]
        names += list(TORCH_SETTINGS)
        names += list(PEER_SETTINGS) if args.peer_dir else []
    if "dfgan" in args.architecture:
        names += [n for n, s in KERAS_SETTINGS.items() if s["architecture"] == "dfgan"]
    if not any(flag in cpu_description() for flag in ("avx512_bf16", "amx_bf16")):
        # Without them bf16 is emulated: PyTorch's bf16 matmul runs below 1 GFLOP/s on AVX2, so
        # its step would take minutes; name the settings to run them anyway.
        skipped = [n for n in names if "bf16" in n or "bfloat16" in n]
        print(f"skipped without AVX512-BF16/AMX (pass --settings to run): {', '.join(skipped)}")
        names = [n for n in names if n not in skipped]
    return names


def flops_key(name: str) -> str:
    """Settings that share a network and step share a FLOP count (precision changes neither)."""
    setting = SETTINGS[name]
    return setting["kind"] + (f" {setting['architecture']}" if "architecture" in setting else "")


# The setting each count is made in: float32, as a precision policy changes dtypes, not the work.
COUNTED_IN = {
    "keras dcgan": "keras float32",
    "keras dfgan": "dfgan keras float32",
    "torch": "torch float32",
    "peer": "peer (aelnouby) float32",
}


def summarize(step_seconds: list[list[float]], batch: int) -> dict:
    """Median s/step over runs (each run's median), images/s from it, the runs' spread."""
    medians = [statistics.median(run) for run in step_seconds]
    median = statistics.median(medians)
    return {
        "median": median,
        "images_per_s": batch / median,
        "min": min(medians),
        "max": max(medians),
        "ratio": max(medians) / min(medians),
        "runs": medians,
    }


def table(args, names, summaries, flop_counts, peak) -> list[str]:
    torch_rates = [summaries[n]["images_per_s"] for n in names if n in TORCH_SETTINGS]
    best_torch = max(torch_rates) if torch_rates else None
    lines = [
        "| setting | s/step median | images/s | spread (min-max, max/min) | GFLOP/image "
        "| % roofline | vs best PyTorch |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name in names:
        s = summaries[name]
        count = flop_counts[flops_key(name)]
        per_image = count["contraction"] / count["batch"]
        roofline = 100 * per_image * s["images_per_s"] / (peak * 1e9)
        dcgan = architecture_of(name) == "dcgan"
        versus = f"{s['images_per_s'] / best_torch:.2f}x" if best_torch and dcgan else "-"
        lines.append(
            f"| {name} | {s['median']:.3f} | {s['images_per_s']:.1f} | "
            f"{s['min']:.3f}-{s['max']:.3f} ({s['ratio']:.3f}) | {per_image / 1e9:.3f} | "
            f"{roofline:.1f}% | {versus} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (a fit)")
    parser.add_argument("--batch", type=int, help="default: 64 for dcgan, DF-GAN's 32 for dfgan")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--filters", type=int, help="ngf = ndf (default: 64 for dcgan, DF-GAN's 32 for dfgan)"
    )
    parser.add_argument("--architecture", nargs="+", choices=sorted(PRESETS), default=["dcgan"])
    parser.add_argument("--peer-dir", help="a checkout of aelnouby/Text-to-Image-Synthesis")
    parser.add_argument("--settings", nargs="+", help="run only these settings (default: all)")
    parser.add_argument(
        "--inter-op", type=int, default=0, help="TF inter-op threads (0: TF's default)"
    )
    parser.add_argument(
        "--intra-op", type=int, default=0, help="TF intra-op threads (0: TF's default)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker.startswith("peak "):
            result = peak_worker(args.worker.split()[1])
        else:
            setting = SETTINGS[args.worker]
            keras_kind = setting["kind"] == "keras"
            if args.count_flops:
                result = (keras_flops if keras_kind else torch_flops)(args, setting)
            else:
                result = (keras_worker if keras_kind else torch_worker)(args, setting)
        print(json.dumps(result))
        return

    print(cpu_description())
    names = chosen_settings(args)
    peaks = {**run_worker(args, "peak torch"), **run_worker(args, "peak tensorflow")}
    print("matmul GFLOP/s (dtype, n): " + ", ".join(f"{k}: {v:.1f}" for k, v in peaks.items()))
    flop_counts = {}
    for name in names:
        key = flops_key(name)
        if key not in flop_counts:
            flop_counts[key] = run_worker(args, COUNTED_IN[key], "--count-flops")

    runs = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names:
            runs[name].append(run_worker(args, name))
            median = statistics.median(runs[name][-1]["steps"])
            print(f"run {repeat + 1} {name}: {median:.3f} s/step", file=sys.stderr, flush=True)
        if repeat + 1 < args.repeats:  # what a stopped run leaves behind
            print("\n".join(report(args, names, runs, flop_counts, peaks)), file=sys.stderr)
    print("\n".join(report(args, names, runs, flop_counts, peaks)))


def report(args, names, runs, flop_counts, peaks) -> list[str]:
    """The table, then the FLOP counts and each run's median, CPU use and page faults."""
    peak = max(v for k, v in peaks.items() if " float32 " in k)
    done = [name for name in names if runs[name]]
    summaries = {
        name: summarize([r["steps"] for r in runs[name]], batch_for(args, architecture_of(name)))
        for name in done
    }
    threads = sorted({runs[name][0]["threads"] for name in done})
    repeats = min(len(runs[name]) for name in done)
    lines = [
        f"{args.size}x{args.size}; dcgan ngf=ndf={filters_for(args, 'dcgan')}, batch "
        f"{batch_for(args, 'dcgan')}; dfgan nf={filters_for(args, 'dfgan')}, batch "
        f"{batch_for(args, 'dfgan')}; peer {PEER_SIZE}x{PEER_SIZE}, ngf=ndf={PEER_FILTERS}, batch "
        f"{batch_for(args, 'dcgan')}; {repeats} runs x {args.steps} timed steps after "
        f"{args.warmup}; " + "; ".join(threads),
        f"roofline: float32 matmul peak {peak:.0f} GFLOP/s",
        "",
        *table(args, done, summaries, flop_counts, peak),
        "",
    ]
    for key, count in flop_counts.items():
        line = f"FLOPs {key}: {count['contraction'] / count['batch'] / 1e9:.3f} GFLOP/image"
        if "total" in count:
            share = 100 * (1 - count["contraction"] / count["total"])
            line += (
                f" (conv/matmul; the elementwise ops TF has counts for add {share:.1f}%; "
                f"its profiler's unpruned total: {count['profiler'] / count['batch'] / 1e9:.3f})"
            )
        lines.append(line)
    if {"keras dcgan", "torch"} <= set(flop_counts):
        keras_count, torch_count = flop_counts["keras dcgan"], flop_counts["torch"]
        ratio = (keras_count["contraction"] / keras_count["batch"]) / (
            torch_count["contraction"] / torch_count["batch"]
        )
        lines.append(f"FLOPs check, Keras graph / FlopCounterMode on the same step: {ratio:.6f}")
    for name in done:
        medians = ", ".join(f"{m:.3f}" for m in summaries[name]["runs"])
        line = f"runs {name}: s/step medians {medians}"
        warm = [statistics.median(r["warmup"][1:]) for r in runs[name] if len(r["warmup"]) > 1]
        if warm:
            line += "; warm-up fit (steps 2+) " + ", ".join(f"{m:.3f}" for m in warm)
        usage = [
            f"{(r['user'] + r['system']) / r['wall']:.2f}/{r['system'] / r['wall']:.2f}/"
            f"{r['minor_faults'] / len(r['steps']):.0f}"
            for r in runs[name]
        ]
        lines.append(line + "; CPUs busy/in kernel/page faults per step " + ", ".join(usage))
    return lines


if __name__ == "__main__":
    main()
