"""Presets, flag overrides and the JSON round trip of the run config."""

import argparse

import pytest

from t2i_keras import config as t2i_config


def parse(flags):
    parser = argparse.ArgumentParser()
    t2i_config.add_override_flags(parser)
    return parser.parse_args(flags)


def test_every_preset_round_trips_through_json(tmp_path):
    for name in t2i_config.PRESETS:
        config = t2i_config.get_preset(name)
        config.save(tmp_path / f"{name}.json")
        assert t2i_config.Config.load(tmp_path / f"{name}.json") == config
        assert config.preset == name


def test_flowers64_has_reeds_hyperparameters():
    t = t2i_config.get_preset("flowers64").train
    assert (t.batch_size, t.epochs, t.lr_halve_every) == (64, 600, 100)
    assert (t.generator_lr, t.discriminator_lr, t.beta_1) == (2e-4, 2e-4, 0.5)


def test_the_gpu_preset_changes_how_procedural64_runs_not_what_it_trains():
    gpu = t2i_config.get_preset("procedural64_gpu").to_dict()
    base = t2i_config.get_preset("procedural64").to_dict()
    assert (gpu["train"]["precision"], gpu["train"]["jit_compile"]) == ("auto", True)
    assert gpu["train"]["batch_size"] == 64  # the global batch, Reed's
    gpu["preset"], gpu["train"]["jit_compile"] = base["preset"], base["train"]["jit_compile"]
    assert gpu == base


def test_flags_override_fields_and_leave_the_rest():
    base = t2i_config.get_preset("quickstart")
    args = parse(
        ["--train.batch_size", "16", "--model.spectral_norm", "true", "--sample_captions", "a", "b"]
    )
    config = t2i_config.apply_overrides(base, args)
    assert config.train.batch_size == 16
    assert config.model.spectral_norm is True
    assert config.sample_captions == ("a", "b")
    assert config.train.epochs == base.train.epochs
    assert config.preset == "quickstart"


def test_bad_values_are_clear_errors():
    with pytest.raises(SystemExit):
        parse(["--train.batch_size", "many"])
    with pytest.raises(SystemExit):
        parse(["--model.spectral_norm", "maybe"])
    with pytest.raises(ValueError, match="Unknown preset"):
        t2i_config.get_preset("nope")
    with pytest.raises(ValueError, match="Unknown TrainConfig fields"):
        t2i_config.Config.from_dict({"train": {"batch": 3}})


def test_every_preset_is_valid_once_its_data_folder_exists(tmp_path):
    for name in t2i_config.PRESETS:
        config = t2i_config.get_preset(name)
        if config.data.dataset != "flowers":
            config.data.data_dir = str(tmp_path)
        assert t2i_config.config_problems(config) == [], name


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("train.batch_size", -5, "--train.batch_size must be positive, got -5"),
        ("train.batch_size", 0, "--train.batch_size must be positive"),
        ("train.epochs", 0, "--train.epochs must be positive"),
        ("data.num_train", 0, "--data.num_train must be positive"),
        ("model.generator_filters", -1, "--model.generator_filters must be positive"),
        ("samples_per_caption", 0, "--samples_per_caption must be positive"),
        ("train.generator_lr", 0.0, "--train.generator_lr must be positive"),
        ("train.backup_every", -1, "--train.backup_every must be zero or positive"),
        ("train.ma_gp_weight", -0.5, "--train.ma_gp_weight must be zero or positive"),
        ("train.beta_1", 1.0, r"--train.beta_1 must be in \[0, 1\)"),
        ("train.ema_decay", -0.1, r"--train.ema_decay must be in \[0, 1\)"),
        ("train.generator_lr", float("nan"), "must be a finite number"),
        ("train.batch_size", 2.5, "--train.batch_size must be an integer"),
        ("train.jit_compile", "yes", "--train.jit_compile must be true or false"),
        ("data.image_size", 48, "--data.image_size must be one of 16, 32, 64, 128, 256"),
        ("train.loss", "wasserstein", "--train.loss must be one of bce, hinge"),
        ("model.architecture", "unet", "--model.architecture must be one of"),
        ("sample_captions", (), "--sample_captions needs at least one caption"),
        ("sample_captions", ("a", " "), "no empty one"),
    ],
)
def test_each_bad_field_is_named_with_what_it_accepts(field, value, message):
    config = t2i_config.get_preset("quickstart")
    section, _, name = field.rpartition(".")
    setattr(getattr(config, section) if section else config, name, value)
    with pytest.raises(t2i_config.ConfigError, match=message):
        t2i_config.validate(config)


def test_fields_that_depend_on_each_other_or_the_disk(tmp_path, monkeypatch):
    def problems(**changes):
        config = t2i_config.get_preset("quickstart")
        for field, value in changes.items():
            section, _, name = field.partition("__")
            setattr(getattr(config, section), name, value)
        return " ".join(t2i_config.config_problems(config))

    assert "set --data.data_dir" in problems(data__dataset="coco")
    assert "does not exist" in problems(data__dataset="coco", data__data_dir=str(tmp_path / "no"))
    assert problems(data__dataset="coco", data__data_dir=str(tmp_path)) == ""
    assert "only cub has" in problems(data__resize_policy="bbox")
    assert "an epoch would have no step" in problems(data__num_train=10, train__batch_size=64)
    assert problems(data__num_train=10, train__batch_size=64, train__steps_per_epoch=3) == ""
    assert problems(model__text_bottleneck_dim=16) == ""
    assert "dcgan only" in problems(model__text_bottleneck_dim=16, model__architecture="dfgan")
    assert "smaller than --model.z_dim 100" in problems(model__text_bottleneck_dim=100)
    assert "choose one" in problems(
        model__text_bottleneck_dim=16, model__conditioning_augmentation=True
    )
    assert problems(model__patch_realism=True) == ""
    assert "patch_realism is for --model.architecture dcgan only" in problems(
        model__patch_realism=True, model__architecture="dfgan"
    )
    assert "two caption-blind realism losses" in problems(
        model__patch_realism=True, model__unconditional_loss=True
    )
    assert problems(train__contrastive_weight=1.0) == ""
    assert "needs --model.architecture dcgan with" in problems(
        train__contrastive_weight=1.0, model__discriminator_conditioning="concat"
    )
    assert "needs --model.architecture dcgan with" in problems(
        train__contrastive_weight=1.0, model__architecture="dfgan", model__patch_realism=False
    )
    assert "ma_gp_weight both take over" in problems(
        train__contrastive_weight=1.0, train__ma_gp_weight=2.0
    )
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert "needs TF_CONFIG" in problems(train__strategy="multi_worker")
    config = t2i_config.get_preset("quickstart")
    config.text_encoder = str(tmp_path / "missing_encoder")
    assert "is not a folder" in " ".join(t2i_config.config_problems(config))
    assert t2i_config.validate(t2i_config.get_preset("quickstart")).preset == "quickstart"
