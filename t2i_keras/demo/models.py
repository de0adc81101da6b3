"""What the demo page draws with: an export, a training run, or a model behind TF Serving.

Each source answers `generate(captions, num_per_caption, seed)` with uint8 images
[len(captions), num_per_caption, H, W, 3] (the same seed gives the same images, as everywhere in
t2i_keras) and describes itself in `info` (name, version, image size, example captions), which the
page shows. Problems the person at the page can act on raise `DemoError`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import threading
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf

from t2i_keras.config import SAMPLE_CAPTIONS
from t2i_keras.demo.server import DemoError
from t2i_keras.serving import client as serving
from t2i_keras.serving.export import generate_from_saved_model, load_saved_model
from t2i_keras.text.encoder import TextEncoder
from t2i_keras.training.runs import generate_images, load_run


@dataclasses.dataclass
class ModelInfo:
    """What the page says about the model.

    Attributes:
        name: the model's name (the export's folder, the run's folder, or the served name).
        version: the export's version, "run" for a training run, or the served version.
        image_size: side of the square images, in pixels.
        source: where the images come from, e.g. "SavedModel saved_models/quickstart/1".
        example_captions: captions the page offers to try.
    """

    name: str
    version: str
    image_size: int
    source: str
    example_captions: tuple[str, ...] = SAMPLE_CAPTIONS


class SavedModelSource:
    """An export loaded in this process (`serving.export.load_saved_model`).

    Args:
        path: a version folder, or a base path (its newest version).
    """

    def __init__(self, path: str | pathlib.Path):
        self.model = load_saved_model(path)
        version_dir = _version_dir(pathlib.Path(path))  # as given: the page shows it
        self._lock = threading.Lock()
        image = self.generate(["a flower"], 1, 0)  # also traces and warms the graph up
        self.info = ModelInfo(
            name=version_dir.resolve().parent.name,
            version=version_dir.name,
            image_size=int(image.shape[2]),
            source=f"SavedModel {version_dir}",
        )

    def generate(self, captions: list[str], num_per_caption: int, seed: int) -> np.ndarray:
        try:
            with self._lock:
                return generate_from_saved_model(self.model, captions, num_per_caption, seed)
        except tf.errors.InvalidArgumentError as error:
            limit = re.search(r"the maximum batch is (\d+)", error.message)
            if not limit:
                raise
            raise DemoError(_too_many(captions, num_per_caption, limit.group(1))) from None


class RunSource:
    """A training run's model (its EMA generator) and its text encoder, in this process.

    Args:
        run_dir: a run directory written by `t2i-keras train`.
    """

    def __init__(self, run_dir: str | pathlib.Path):
        self.gan, config = load_run(run_dir)
        self.encoder = TextEncoder(config.text_encoder)
        self._lock = threading.Lock()
        self.info = ModelInfo(
            name=pathlib.Path(run_dir).resolve().name,
            version="run",
            image_size=config.data.image_size,
            source=f"run {run_dir} (preset {config.preset})",
            example_captions=tuple(config.sample_captions),
        )

    def generate(self, captions: list[str], num_per_caption: int, seed: int) -> np.ndarray:
        with self._lock:
            return generate_images(self.gan, self.encoder, captions, num_per_caption, seed)


class RestSource:
    """A model behind TF Serving's REST API (`serving.client.RestClient`), seeded requests.

    Args:
        base_url: e.g. "http://localhost:8501".
        model_name: the model's name in models.config.
        version: int or None (default, the newest version the server has).
        z_dim: the model's noise size (100 for every preset).
        timeout: seconds per request.

    Raises:
        serving.ServingError: the server cannot be reached or refuses a first request.
    """

    def __init__(
        self,
        base_url: str,
        model_name: str,
        version: int | None = None,
        z_dim: int = 100,
        timeout: float = 60.0,
    ):
        self.client = serving.RestClient(base_url, model_name, version, timeout)
        self.z_dim = z_dim
        image = serving.request_images(self.client, ["a flower"], 1, 0, z_dim)
        served = version if version is not None else _served_version(base_url, model_name)
        self.info = ModelInfo(
            name=model_name,
            version=str(served) if served is not None else "newest served",
            image_size=int(image.shape[2]),
            source=f"TF Serving {base_url.rstrip('/')}",
        )

    def generate(self, captions: list[str], num_per_caption: int, seed: int) -> np.ndarray:
        try:
            return serving.request_images(self.client, captions, num_per_caption, seed, self.z_dim)
        except serving.ServingError as error:
            limit = re.search(r"the maximum batch is (\d+)", str(error))
            if limit:
                raise DemoError(_too_many(captions, num_per_caption, limit.group(1))) from None
            raise DemoError(f"the model server failed: {error}", status=502) from None


def _version_dir(path: pathlib.Path) -> pathlib.Path:
    if (path / "saved_model.pb").exists():
        return path
    versions = sorted(int(p.name) for p in path.iterdir() if re.fullmatch(r"\d+", p.name))
    return path / str(versions[-1])


def _served_version(base_url: str, model_name: str) -> int | None:
    """The newest AVAILABLE version in TF Serving's model status API, if the server has it."""
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = json.loads(response.read())
        versions = [
            int(entry["version"])
            for entry in status.get("model_version_status", [])
            if entry.get("state") == "AVAILABLE"
        ]
    except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
        return None
    return max(versions, default=None)


def _too_many(captions: list[str], num_per_caption: int, limit: str) -> str:
    return (
        f"{len(captions)} caption(s) x {num_per_caption} images = "
        f"{len(captions) * num_per_caption} images, but the model draws at most {limit} at once: "
        "ask for fewer images or captions"
    )
