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
