"""Checks of the command line's values that run before any work (and before TensorFlow loads).

Each failure raises `UsageError` with one sentence naming the problem and the fix; `main` prints it
on one line and exits with status 2. The argparse types below do the same for single flags.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re

from t2i_keras.config import ConfigError, validate


class UsageError(Exception):
    """The user asked for something that cannot work; the message says what to change."""


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {text}")
    return value


def seed(text: str) -> int:
    """numpy's generators take seeds in [0, 2**63)."""
    value = _integer(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def cosine_or_zero(text: str) -> float:
    """A cosine threshold in (0, 1], or 0 for off."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a cosine from 0 (off) to 1, got {text}")
    return value


def port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def captions(values: list[str]) -> list[str]:
    if not values or any(not c.strip() for c in values):
        raise UsageError("every caption must hold some text; quote each caption")
    return values


def run_dir(path: str) -> pathlib.Path:
    """A run directory that training has written a model into."""
    run = pathlib.Path(path)
    if not (run / "config.json").is_file():
        raise UsageError(
            f"{path} is not a run directory (no config.json): train one with "
            f"`t2i-keras train --run-dir {path}`, or pass the --run-dir of an earlier run"
        )
    if not any((run / name).is_file() for name in ("model.keras", "checkpoints/last.keras")):
        raise UsageError(
            f"{path} has no model yet (no model.keras nor checkpoints/last.keras): let its "
            "training finish an epoch"
        )
    return run


def saved_model(path: str) -> pathlib.Path:
    """An export: a version folder, or a base path with integer version folders."""
    base = pathlib.Path(path)
    if (base / "saved_model.pb").is_file():
        return base
    versions = sorted(
        (int(p.name) for p in base.glob("*") if re.fullmatch(r"\d+", p.name) and p.is_dir()),
    )
    if not versions or not (base / str(versions[-1]) / "saved_model.pb").is_file():
        raise UsageError(
            f"{path} is not a SavedModel (no saved_model.pb, no version folder holding one): "
            f"export a run with `t2i-keras export --run runs/<name> --export-dir {path}`"
        )
    return base


def existing_path(path: str, what: str) -> pathlib.Path:
    if not os.path.exists(path):
        raise UsageError(f"{what} {path} does not exist; check the path")
    return pathlib.Path(path)


def writable_parent(path: str, flag: str) -> pathlib.Path:
    """An output path whose folder exists or can be created, and which is not a folder itself."""
    out = pathlib.Path(path)
    if out.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name such as {out / 'grid.png'}")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: {parent} is not a writable folder")
    return out


def config_checked(config):
    """The config if every field is usable; each problem becomes one clause of the UsageError."""
    try:
        return validate(config)
    except ConfigError as error:
        raise UsageError(str(error)) from None
