"""A whole (tiny) run through `train`: the run directory, resuming artefacts, load_run, generation,
and the command line's train and generate."""

import dataclasses
import json
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from t2i_keras import config as t2i_config
from t2i_keras.training import distribute, trainer
from t2i_keras.training.runs import generate_images, load_run
from t2i_keras.training.trainer import train
from t2i_keras.utils.files import LOCK_FILE, DirectoryInUseError
from tests.gan_helpers import tiny_config


def test_run_directory_holds_everything_to_reproduce_and_inspect(tiny_run):
    run_dir, _ = tiny_run
    for name in (
        "config.json",
        "model.keras",
        "checkpoints/last.keras",
        "history.json",
        "training_curves.png",
        "samples/epoch_0001.png",
        "samples/epoch_0002.png",
        "samples/latest.png",
    ):
        assert (run_dir / name).exists(), name
    assert t2i_config.Config.load(run_dir / "config.json") == tiny_config()
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["d_loss"]) == 2 and len(history["g_loss"]) == 2
    assert any((run_dir / "logs").rglob("events.out.tfevents*")), "TensorBoard logs missing"


def test_load_run_gives_the_trained_model(tiny_run, text_encoder):
    run_dir, gan = tiny_run
    restored, config = load_run(run_dir)
    a = generate_images(gan, text_encoder, ["a pink flower"], num_per_caption=3, seed=1)
    b = generate_images(restored, text_encoder, ["a pink flower"], num_per_caption=3, seed=1)
    assert a.shape == (1, 3, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    c = generate_images(restored, text_encoder, ["a pink flower"], num_per_caption=3, seed=2)
    assert not np.array_equal(a, c)


def test_load_run_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_run(tmp_path)
    tiny_config().save(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="finished an epoch"):
        load_run(tmp_path)


@pytest.mark.slow
def test_generate_command_writes_a_grid(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    out = tmp_path / "grid.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "t2i_keras",
            "generate",
            "--run",
            str(run_dir),
            "a flower with red round petals",
            "a white flower",
            "--num",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.exists() and out.stat().st_size > 1000


def test_train_command_rejects_unknown_presets_and_bad_flags():
    for flags in (["--preset", "nope"], ["--train.batch_size", "x"]):
        result = subprocess.run(
            [sys.executable, "-m", "t2i_keras", "train", *flags],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2 and "error" in result.stderr


def test_training_on_real_photographs_coco_mini(coco_mini, tmp_path, text_encoder):
    """Prepare COCO-format data (80 real photos, 400 captions), train a few steps, generate."""
    from t2i_keras.data.splits import load_split
    from t2i_keras.training.trainer import train

    config = tiny_config()
    config.data.dataset, config.data.data_dir = "coco", str(coco_mini)
    config.data.flip = False
    config.data.test_split = "train"  # coco-mini has one split
    config.train.eval_every, config.train.eval_samples = 2, 16  # FID during training, epoch 2
    config.sample_captions = ("a man riding a wave on a surfboard", "a plate of food")
    gan = train(config, tmp_path, verbose=0)
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["fid"]) == 1 and history["fid"][0] > 0
    data = load_split(config, "train", text_encoder)
    assert data.images.shape == (80, 32, 32, 3)
    assert int(data.caption_counts.sum()) == 400
    assert len(data.real_embeddings()) == 400
    images = generate_images(gan, text_encoder, ["a giraffe standing in a field"], 2, seed=0)
    assert images.shape == (1, 2, 32, 32, 3) and images.std() > 0
    assert (tmp_path / "samples" / "epoch_0002.png").exists()
    with pytest.raises(ValueError, match="set --data.data_dir"):
        config.data.data_dir = ""
        load_split(config, "train", text_encoder)


def shrunk_preset(name, **train):
    """The preset's networks, losses and recipe as they are, on a few procedural flowers: narrow
    networks, batch 8, two steps."""
    config = t2i_config.get_preset(name)
    config.data = dataclasses.replace(
        config.data, dataset="flowers", data_dir="", num_train=16, num_test=8
    )
    config.model.generator_filters = config.model.discriminator_filters = 2
    config.train = dataclasses.replace(
        config.train, batch_size=8, epochs=1, steps_per_epoch=2, eval_every=0, **train
    )
    config.sample_captions, config.samples_per_caption = ("a red flower",), 1
    return config


@pytest.mark.parametrize("preset", ["quickstart", "dfgan_flowers64"])
def test_a_preset_trains_a_few_steps_end_to_end(preset, tmp_path, text_encoder):
    config = shrunk_preset(preset, precision="float32")
    gan = train(config, tmp_path, verbose=0)
    expected = "FusedGenerator" if preset.startswith("dfgan") else "Generator"
    assert type(gan.generator).__name__ == expected
    assert (tmp_path / "model.keras").exists()
    timing = (tmp_path / "timing.json").read_text()
    assert '"steps": 2' in timing


def test_the_gpu_preset_trains_as_on_an_ampere_gpu_with_bf16_and_xla(
    monkeypatch, tmp_path, text_encoder
):
    # TensorFlow reports an A100 (compute capability 8.0); the step still runs on this CPU, in
    # the policy and with the XLA compilation that GPU would get.
    monkeypatch.setattr(distribute, "gpu_compute_capabilities", lambda: [(8, 0)])
    config = shrunk_preset("procedural64_gpu")
    assert (config.train.precision, config.train.jit_compile) == ("auto", True)
    gan = train(config, tmp_path, verbose=0)
    assert gan.jit_compile is True  # Keras turns XLA off, with a warning, where it cannot use it
    assert gan.generator.dtype_policy.name == "mixed_bfloat16"
    assert gan.discriminator.dtype_policy.name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    assert json.loads((tmp_path / "config.json").read_text())["train"]["precision"] == "auto"
    assert '"steps": 2' in (tmp_path / "timing.json").read_text()
    images = generate_images(gan, text_encoder, ["a red flower"], 2, seed=0)
    assert images.shape == (1, 2, 64, 64, 3) and images.std() > 0


@pytest.mark.parametrize(
    "precision, scaled", [("mixed_float16", True), ("mixed_bfloat16", False), ("float32", False)]
)
def test_only_float16_gets_loss_scaling(precision, scaled):
    # float16 gradients underflow without it; bf16 has float32's exponent range and needs none.
    config = tiny_config()
    config.train.precision = precision
    optimizer = trainer.make_optimizer(config, 1e-3, steps_per_epoch=10)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) is scaled


def test_a_second_training_on_a_run_directory_is_refused_at_once(tmp_path, lock_holder):
    holder = lock_holder(tmp_path, "training")  # another train() on the same --run-dir
    started = time.monotonic()
    with pytest.raises(DirectoryInUseError) as error:
        train(tiny_config(), tmp_path, verbose=0)
    assert time.monotonic() - started < 5, "refused only after loading data"
    message = str(error.value)
    assert str(tmp_path) in message and f"process {holder.pid} " in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE], "it wrote into the folder"


def test_the_lock_of_a_killed_training_does_not_block_the_next(tmp_path, lock_holder, text_encoder):
    holder = lock_holder(tmp_path, "training")
    holder.kill()
    holder.wait()
    config = tiny_config()
    config.train.epochs, config.train.steps_per_epoch = 1, 1
    train(config, tmp_path, verbose=0)
    assert (tmp_path / "model.keras").exists()
