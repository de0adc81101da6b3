"""Training under tf.distribute: MirroredStrategy equivalence, two real workers through
`t2i-keras train` (also killed and resumed), exact resume after SIGKILL (also mid-write), NaN
stops, strategy choice."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.models.build import build_gan
from t2i_keras.training import distribute
from t2i_keras.training.backup import TrainingBackup
from tests.gan_helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Subprocesses import this checkout's package (cwd and PYTHONPATH), never an installed copy.
CHILD_ENV = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore",
    "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
}


def run(args, env=None, timeout=600):
    env = {**CHILD_ENV, **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def model_weights(path):
    """(name, value) of every weight in order (paths hold per-process layer counters)."""
    gan = keras.saving.load_model(path, compile=False)
    return [(w.path, np.array(w)) for w in gan.weights]


def trainable_weights(path):
    """Per network, the values of its trainable weights in order."""
    gan = keras.saving.load_model(path, compile=False)
    return {
        part: [np.array(w) for w in getattr(gan, part).trainable_weights]
        for part in ("generator", "discriminator")
    }


def assert_same_weights(a, b, atol=0.0):
    assert len(a) == len(b)
    for (name, x), (_, y) in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=name)


EQUIVALENCE_TOLERANCE = 1e-5  # the README's bound; measured: at most 2e-7 (SGD), 1e-6 (Adam)


EQUIVALENCE_RUNS = ("reed", "quickstart:sgd", "dfgan:sgd", "quickstart:sgd:replica_mean")


@pytest.fixture(scope="module")
def equivalence():
    """Every equivalence run in one process (TensorFlow starts, and the strategy is built, once)."""
    result = run(
        [
            sys.executable,
            "-m",
            "tests.distributed_run",
            "equivalence",
            "--steps",
            "3",
            "--runs",
            ",".join(EQUIVALENCE_RUNS),
        ],
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_equivalent(entry):
    assert entry["replicas"] == 2
    for part in ("generator", "discriminator", "ema_generator"):
        # Training moved the weights by over 100 times the tolerance, so a doubled or halved
        # gradient would show (and a network that did not train, or blew up, fails).
        assert entry[part]["max_abs_diff"] < EQUIVALENCE_TOLERANCE, (part, entry[part])
        assert 100 * EQUIVALENCE_TOLERANCE < entry[part]["max_change"] < 10.0, (part, entry[part])


def test_mirrored_strategy_on_two_devices_equals_one_device_at_the_same_global_batch(equivalence):
    # Reed's networks (BCE, concatenation, synchronized batch norm, MA-GP) with the Adam the
    # presets use; GAN-INT and the EMA are in every run.
    assert_equivalent(equivalence["reed"])


def test_mirrored_equivalence_of_the_quickstart_and_dfgan_networks_under_sgd(equivalence):
    # SGD's update is proportional to the gradient, so a wrong loss scale cannot hide behind
    # Adam's normalization: hinge + spectral norm + projection + patch realism + the contrastive
    # term (quickstart: each replica ranks its images among the captions of the whole global
    # batch, gathered from every replica), and DF-GAN's deep fusion generator with its residual
    # one-way discriminator, hinge and MA-GP.
    assert_equivalent(equivalence["quickstart:sgd"])
    assert_equivalent(equivalence["dfgan:sgd"])


def test_the_equivalence_check_catches_a_per_replica_loss_mean(equivalence):
    # The classic mistake: each replica averages over its own half of the batch, and the
    # all-reduce then sums the two gradients (twice the global mean's). It must fail the check.
    report = equivalence["quickstart:sgd:replica_mean"]
    assert report["generator"]["max_abs_diff"] > 100 * EQUIVALENCE_TOLERANCE, report
    assert report["discriminator"]["max_abs_diff"] > 100 * EQUIVALENCE_TOLERANCE, report


@contextlib.contextmanager
def held_ports(count):
    """`count` free ports, each kept bound (not listening) until the block ends.

    TF_CONFIG must name every address before the workers start; a port chosen and released would
    be free for any process to take until its worker binds it. A bound port is skipped by the
    kernel when it hands out ports (bind to port 0, connect) and refused to a plain bind, while
    the worker's gRPC server, which binds with SO_REUSEADDR as this socket does, may still bind
    it. SO_REUSEPORT would not do: TF's server turns it off, and a port held with it fails the
    worker with "Failed to add port to server" (checked with TF 2.21).
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 0))  # the address TF's gRPC server binds
        yield [s.getsockname()[1] for s in sockets]


def test_held_ports_are_refused_to_other_binds():
    with held_ports(2) as ports:
        for port in ports:
            with socket.socket() as other, pytest.raises(OSError, match="in use"):
                other.bind(("127.0.0.1", port))


def harness(*flags):
    """`tests.distributed_run train FLAGS` (harness flags, "--", then `t2i-keras train` flags)."""
    return [sys.executable, "-m", "tests.distributed_run", "train", *flags]


def train_two_workers(harness_flags, train_flags, folder, timeout=900):
    """The harness's `t2i-keras train` as two workers on 127.0.0.1; [(returncode, stdout, stderr)]
    per worker. Their outputs and temporary folders go into `folder`."""
    with held_ports(2) as ports:
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        procs, logs = [], []
        for index in range(2):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            # Files, not pipes: a worker blocked on a full pipe would stall the other one too.
            out, err = (open(folder / f"worker{index}.{kind}", "w+") for kind in ("out", "err"))
            logs.append((out, err))
            procs.append(
                subprocess.Popen(
                    harness(*harness_flags, "--", *train_flags),
                    stdout=out,
                    stderr=err,
                    text=True,
                    env={**CHILD_ENV, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(folder)},
                    cwd=REPO,
                )
            )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed or was killed: the other would wait for it until the timeout
            time.sleep(0.5)
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for p, (out, err) in zip(procs, logs):
        code = p.wait()
        with out, err:
            out.seek(0)
            err.seek(0)
            results.append((code, out.read(), err.read()))
    return results


def tiny_flags(epochs, steps_per_epoch, backup_every):
    """`t2i-keras train` flags: the quickstart shrunk to seconds (32x32, 4 filters, batch 16)."""
    return [
        "--preset",
        "quickstart",
        "--precision",
        "float32",
        "--data.image_size",
        "32",
        "--data.num_train",
        "64",
        "--data.num_test",
        "16",
        "--model.generator_filters",
        "4",
        "--model.discriminator_filters",
        "4",
        "--train.batch_size",
        "16",
        "--train.epochs",
        str(epochs),
        "--train.steps_per_epoch",
        str(steps_per_epoch),
        "--train.backup_every",
        str(backup_every),
        "--samples_per_caption",
        "2",
        "--sample_captions",
        "a red flower",
        "a blue flower",
    ]


# SGD: its update follows the gradient's scale, which Adam (the presets') normalizes away, so a
# gradient doubled by a wrong loss scale shows in the weights. 3 steps, backups at 2 and 3.
WORKER_FLAGS = [
    *tiny_flags(epochs=1, steps_per_epoch=3, backup_every=2),
    "--train.generator_lr",
    "0.05",
    "--train.discriminator_lr",
    "0.05",
]


def last_json_line(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, text_encoder):
    """Two workers trained with SGD: (run_dir, export_dir, [(returncode, stdout, stderr)] * 2)."""
    root = tmp_path_factory.mktemp("two_workers")
    run_dir, export_dir = root / "run", root / "saved_models" / "flowers"
    flags = ["--run-dir", str(run_dir), "--export-dir", str(export_dir), *WORKER_FLAGS]
    results = train_two_workers(["--optimizer", "sgd"], flags, root)
    for code, _, err in results:
        assert code == 0, err[-4000:]
    return run_dir, export_dir, results


@pytest.mark.slow
def test_two_workers_train_like_one_process_at_the_same_global_batch(two_workers, tmp_path):
    run_dir, export_dir, results = two_workers
    # The chief (worker 0) owns run_dir and the export; worker 1 wrote into a temporary folder,
    # removed at the end.
    chief_line, other_line = (
        next(line for line in out.splitlines() if line.startswith("Wrote run"))
        for _, out, _ in results
    )
    assert str(run_dir) in chief_line and str(run_dir) not in other_line
    other_dir = other_line.split("Wrote run ")[1].split(" ")[0]
    assert not os.path.exists(other_dir), "the worker's temporary folder was left behind"
    for name in (
        "model.keras",
        "checkpoints/last.keras",
        "samples/epoch_0001.png",
        "backup/latest",
    ):
        assert (run_dir / name).exists(), name
    assert (export_dir / "1" / "saved_model.pb").exists()
    assert not (export_dir / "2").exists(), "only the chief's export is kept"
    # All-reduce makes the workers agree with each other by construction; what must hold is that
    # together they train like one process on the whole global batch (a worker training on the
    # wrong shard, on the whole stream, or summing per-worker means, ends elsewhere).
    single_dir = tmp_path / "single"
    single = run(harness("--optimizer", "sgd", "--", "--run-dir", str(single_dir), *WORKER_FLAGS))
    assert single.returncode == 0, single.stderr[-4000:]
    assert_same_weights(
        model_weights(run_dir / "model.keras"),
        model_weights(single_dir / "model.keras"),
        atol=EQUIVALENCE_TOLERANCE,
    )
    # SGD's update is the gradient times the rate, so a gradient off by a factor (a per-worker
    # mean that the all-reduce sums doubles it) or taken on the wrong examples moves the weights
    # by about one step's update more or less: the last step alone must be far above the bound.
    # (Measured by hand with the workers' dataset unsharded, and with per-worker means: the
    # weights end 0.036 and 0.042 from the single process's.)
    before = trainable_weights(run_dir / "backup" / "step_000000002" / "model.keras")
    after = trainable_weights(run_dir / "model.keras")
    for part in before:
        update = max(float(np.max(np.abs(a - b))) for a, b in zip(before[part], after[part]))
        assert update > 100 * EQUIVALENCE_TOLERANCE, (part, update)


@pytest.mark.slow
def test_killed_workers_resume_from_the_chiefs_backup_and_end_like_uninterrupted_ones(
    two_workers, tmp_path
):
    run_dir = tmp_path / "run"
    flags = ["--run-dir", str(run_dir), *WORKER_FLAGS]
    # Both SIGKILLed after step 3, between the backups of steps 2 and 3 (the epoch's end).
    killed = train_two_workers(["--optimizer", "sgd", "--kill-after-step", "3"], flags, tmp_path)
    assert [code for code, _, _ in killed] == [-9, -9], [err[-2000:] for _, _, err in killed]
    assert not (run_dir / "model.keras").exists()
    resumed = train_two_workers(["--optimizer", "sgd"], flags, tmp_path)
    for code, out, err in resumed:
        assert code == 0, err[-4000:]
        # Each restored the chief's step-2 backup (worker 1's own folder is new and empty) and ran
        # only the step lost; a worker that started afresh would run all 3 and train on
        # weights the other does not have.
        assert last_json_line(out) == {"resumed_from": 2, "steps_run": 1}
    assert_same_weights(
        model_weights(run_dir / "model.keras"), model_weights(two_workers[0] / "model.keras")
    )


RESUME_EPOCHS, RESUME_STEPS_PER_EPOCH, RESUME_BACKUP_EVERY = 2, 5, 2  # backups: 2 4 5 6 8 10


def train_command(run_dir, *kill):
    flags = tiny_flags(RESUME_EPOCHS, RESUME_STEPS_PER_EPOCH, RESUME_BACKUP_EVERY)
    return harness(*kill, "--", "--run-dir", str(run_dir), *flags)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, text_encoder):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = run(train_command(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    total = RESUME_EPOCHS * RESUME_STEPS_PER_EPOCH
    assert last_json_line(result.stdout) == {"resumed_from": 0, "steps_run": total}
    return model_weights(run_dir / "model.keras")


@pytest.mark.parametrize(
    "kill, resumed_from",
    [
        # Mid-epoch, between the every-2-step backups at steps 2 and 4 (epochs end at 5, 10).
        (["--kill-after-step", "3"], 2),
        # While the mid-epoch backup of step 4 is being written: the step-2 one is still good.
        (["--kill-in-backup", "4"], 2),
        # While checkpoints/last.keras is being replaced at the end of epoch 1 (its backup, at
        # step 5, was written just before).
        (["--kill-in-model-save"], 5),
    ],
    ids=["mid-epoch", "in-backup", "in-checkpoint"],
)
def test_a_killed_run_resumes_from_its_backup_and_ends_exactly_like_an_uninterrupted_one(
    kill, resumed_from, uninterrupted, tmp_path
):
    killed = run(train_command(tmp_path, *kill))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (tmp_path / "model.keras").exists()
    if (tmp_path / "checkpoints" / "last.keras").exists():  # whatever is there still loads
        keras.saving.load_model(tmp_path / "checkpoints" / "last.keras", compile=False)
    resumed = run(train_command(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # A rerun that ignored its backup would also end with the uninterrupted weights (training is
    # seeded): the resumed process must have started at the backup and run only the rest.
    total = RESUME_EPOCHS * RESUME_STEPS_PER_EPOCH
    assert last_json_line(resumed.stdout) == {
        "resumed_from": resumed_from,
        "steps_run": total - resumed_from,
    }
    assert_same_weights(model_weights(tmp_path / "model.keras"), uninterrupted)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_backup(
    tmp_path, text_encoder, monkeypatch
):
    from t2i_keras.training import trainer

    config = tiny_config()
    config.train.epochs = 1
    config.train.precision = "float32"
    trainer.train(config, tmp_path, verbose=0)
    good = model_weights(tmp_path / "checkpoints" / "last.keras")
    original = trainer.load_split

    def poisoned(*args, **kwargs):
        data = original(*args, **kwargs)
        data.embeddings[:] = np.nan
        return data

    monkeypatch.setattr(trainer, "load_split", poisoned)
    config.train.epochs = 2
    with pytest.raises(
        FloatingPointError, match=r"NaN/Inf at step 3 .*last good backup is .*step_000000002"
    ):
        trainer.train(config, tmp_path, verbose=0)
    assert_same_weights(model_weights(tmp_path / "checkpoints" / "last.keras"), good)
    gan = trainer.compile_gan(build_gan(config, 512), config, 2)
    assert TrainingBackup(gan, tmp_path / "backup").restore() == 2
    assert all(np.isfinite(np.array(w)).all() for w in gan.weights)


def test_strategy_choice_and_bad_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribute.choose_strategy("auto")
    assert strategy.num_replicas_in_sync == 1 and distribute.is_chief(strategy)
    with pytest.raises(ValueError, match="unknown strategy"):
        distribute.choose_strategy("tpu")
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute.choose_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match="not a valid cluster spec"):
        distribute.choose_strategy("auto")


def test_default_precision_follows_the_hardware():
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    assert distribute.default_precision() == ("mixed_bfloat16" if native_bf16 else "float32")


@pytest.mark.parametrize(
    "gpus, cpu_flags, expected",
    [
        pytest.param([(8, 0)], "", "mixed_bfloat16", id="A100"),
        pytest.param([(9, 0), (9, 0)], "", "mixed_bfloat16", id="two H100"),
        pytest.param([(8, 6)], "", "mixed_bfloat16", id="A10"),
        # Volta: float16 tensor cores but no bf16; float16 is left to the user.
        pytest.param([(7, 0)], "", "float32", id="V100"),
        # With a GPU the CPU's bf16 does not count.
        pytest.param([(7, 5)], "flags : avx2 amx_bf16", "float32", id="T4 on an AMX CPU"),
        # One policy runs on every replica.
        pytest.param([(8, 0), (7, 0)], "", "float32", id="A100 beside a V100"),
        pytest.param([None], "", "float32", id="GPU without a capability"),
        pytest.param([], "flags : fpu avx2 avx512_bf16", "mixed_bfloat16", id="AVX512-BF16 CPU"),
        pytest.param([], "flags : fpu avx2 amx_bf16 amx_tile", "mixed_bfloat16", id="AMX CPU"),
        pytest.param([], "flags : fpu avx2 avx512f", "float32", id="AVX-512 CPU without BF16"),
        pytest.param([], "", "float32", id="no cpuinfo"),
    ],
)
def test_precision_auto_on_described_hardware(gpus, cpu_flags, expected):
    assert distribute.precision_for_hardware(gpus, cpu_flags) == expected


def fake_gpus(monkeypatch, capabilities):
    """TensorFlow reports one GPU per compute capability (physical and logical devices)."""
    physical = [
        tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU")
        for i in range(len(capabilities))
    ]
    logical = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(len(capabilities))]
    details = {device.name: c for device, c in zip(physical, capabilities)}
    real_physical, real_logical = tf.config.list_physical_devices, tf.config.list_logical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: physical if kind == "GPU" else real_physical(kind),
    )
    monkeypatch.setattr(
        tf.config,
        "list_logical_devices",
        lambda kind=None: logical if kind == "GPU" else real_logical(kind),
    )
    monkeypatch.setattr(
        tf.config.experimental,
        "get_device_details",
        lambda device: {"device_name": "fake", "compute_capability": details[device.name]},
    )


@pytest.mark.parametrize(
    "capabilities, expected", [([(8, 0)], "mixed_bfloat16"), ([(7, 5), (7, 5)], "float32")]
)
def test_precision_auto_reads_the_gpus_compute_capability(monkeypatch, capabilities, expected):
    fake_gpus(monkeypatch, capabilities)
    assert distribute.gpu_compute_capabilities() == capabilities
    assert distribute.default_precision() == expected


def test_strategy_auto_mirrors_over_several_gpus_and_names_the_gpu(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    built = []
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda devices: built.append(devices))
    fake_gpus(monkeypatch, [(8, 0), (8, 0)])
    distribute.choose_strategy("auto")
    assert built == [["/device:GPU:0", "/device:GPU:1"]]
    fake_gpus(monkeypatch, [(8, 0)])
    strategy = distribute.choose_strategy("auto")
    assert built == [["/device:GPU:0", "/device:GPU:1"]]  # one GPU: no MirroredStrategy
    assert strategy is tf.distribute.get_strategy()
    assert distribute.describe(strategy, "mixed_bfloat16 (--precision auto)") == (
        "Training on GPU (/device:GPU:0), default strategy (1 replica), "
        "precision mixed_bfloat16 (--precision auto)"
    )


def test_jit_compile_with_several_replicas_is_refused(tmp_path):
    from t2i_keras.training import trainer

    class TwoReplicas:
        num_replicas_in_sync = 2

    config = tiny_config()
    config.train.jit_compile = True
    with pytest.raises(ValueError, match="jit_compile does not work under MirroredStrategy"):
        trainer.train(config, tmp_path, strategy=TwoReplicas())


def test_the_log_line_names_device_strategy_and_precision():
    default = distribute.describe(tf.distribute.get_strategy(), "float32 (--precision auto)")
    assert default.startswith("Training on ") and "default strategy (1 replica)" in default
    assert default.endswith("precision float32 (--precision auto)")
    if not tf.config.list_logical_devices("GPU"):
        assert "the CPU (no GPU found)" in default
    mirrored = distribute.describe(tf.distribute.MirroredStrategy(["/cpu:0"]), "float32")
    assert mirrored == (
        "Training on 1 CPU device(s) of this process, MirroredStrategy (1 replicas in all), "
        "precision float32"
    )
