"""Training under tf.distribute: MirroredStrategy equivalence, two real workers through
`t2i-keras train`, exact resume after SIGKILL (also mid-write), NaN stops, strategy choice."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.models.build import build_gan
from t2i_keras.training import distribute
from t2i_keras.training.backup import TrainingBackup
from tests.gan_helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(args, env=None, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def model_weights(path):
    """(name, value) of every weight in order (paths hold per-process layer counters)."""
    gan = keras.saving.load_model(path, compile=False)
    return [(w.path, np.array(w)) for w in gan.weights]


def assert_same_weights(a, b, atol=0.0):
    assert len(a) == len(b)
    for (name, x), (_, y) in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=name)


def test_mirrored_strategy_on_two_devices_equals_one_device_at_the_same_global_batch():
    result = run([sys.executable, "-m", "tests.distributed_run", "equivalence", "--steps", "3"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    for part in ("generator", "discriminator", "ema_generator"):
        # Batch norm (synchronized), the EMA, MA-GP and GAN-INT all included; training moved the
        # weights by far more than the tolerance, so a doubled or halved gradient would show.
        assert report[part]["max_abs_diff"] < 1e-5, (part, report[part])
        assert report[part]["max_change"] > 1e-2, (part, report[part])


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


TINY_FLAGS = [
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
    "1",
    "--train.steps_per_epoch",
    "3",
    "--train.backup_every",
    "2",
    "--samples_per_caption",
    "2",
    "--sample_captions",
    "a red flower",
    "a blue flower",
]


@pytest.mark.slow
def test_two_workers_train_through_the_train_command(tmp_path, text_encoder):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models" / "flowers"
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "t2i_keras",
                    "train",
                    "--preset",
                    "quickstart",
                    "--run-dir",
                    str(run_dir),
                    "--export-dir",
                    str(export_dir),
                    "--precision",
                    "float32",
                    *TINY_FLAGS,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
        )
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-4000:]
    # The chief (worker 0) owns run_dir and the export; worker 1 wrote into a temporary folder.
    chief_line, other_line = (
        next(line for line in out.splitlines() if line.startswith("Wrote run"))
        for out, _ in outputs
    )
    assert str(run_dir) in chief_line and str(run_dir) not in other_line
    other_dir = other_line.split("Wrote run ")[1].split(" ")[0]
    for name in (
        "model.keras",
        "checkpoints/last.keras",
        "samples/epoch_0001.png",
        "backup/latest",
    ):
        assert (run_dir / name).exists(), name
    assert (export_dir / "1" / "saved_model.pb").exists()
    assert not (export_dir / "2").exists(), "only the chief's export is kept"
    assert_same_weights(
        model_weights(run_dir / "model.keras"), model_weights(f"{other_dir}/model.keras")
    )


@pytest.fixture(scope="module")
def resume_config(tmp_path_factory, text_encoder):
    config = tiny_config()
    config.train.epochs = 2
    config.train.steps_per_epoch = 3
    config.train.backup_every = 2
    config.train.precision = "float32"
    path = tmp_path_factory.mktemp("resume") / "config.json"
    config.save(path)
    return path


@pytest.fixture(scope="module")
def uninterrupted(resume_config, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = run(
        [sys.executable, "-m", "tests.distributed_run", "train", str(resume_config), str(run_dir)]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_weights(run_dir / "model.keras")


@pytest.mark.parametrize(
    "kill",
    [
        ["--kill-after-step", "3"],  # mid-epoch, one step after the step-2 backup
        ["--kill-in-backup", "4"],  # while the step-4 backup is being written
        ["--kill-in-model-save"],  # while checkpoints/last.keras is being replaced
    ],
)
def test_a_killed_run_resumes_and_ends_exactly_like_an_uninterrupted_one(
    kill, resume_config, uninterrupted, tmp_path
):
    command = [
        sys.executable,
        "-m",
        "tests.distributed_run",
        "train",
        str(resume_config),
        str(tmp_path),
    ]
    killed = run(command + kill)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (tmp_path / "model.keras").exists()
    if (tmp_path / "checkpoints" / "last.keras").exists():  # whatever is there still loads
        keras.saving.load_model(tmp_path / "checkpoints" / "last.keras", compile=False)
    resumed = run(command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
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
