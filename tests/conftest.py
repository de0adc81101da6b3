"""Shared test set-up: quiet TensorFlow, offline, deterministic, and the path to ../shared/data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The real data beside the repo; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (it lives beside the repo in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory) -> pathlib.Path:
    """Every test session builds into its own cache, so no test depends on a user's cache."""
    root = tmp_path_factory.mktemp("t2i_cache")
    os.environ["T2I_CACHE_DIR"] = str(root)
    return root


@pytest.fixture(scope="session")
def text_encoder(isolated_cache):
    """The built-in USE encoder, built once per test session."""
    from t2i_keras.text.encoder import TextEncoder

    return TextEncoder()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, text_encoder):
    """A whole tiny training run (run directory and the trained GAN), shared by several modules."""
    from t2i_keras.training.trainer import train

    from .gan_helpers import tiny_config

    run_dir = tmp_path_factory.mktemp("run")
    gan = train(tiny_config(), run_dir, verbose=0)
    return run_dir, gan


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory, tiny_run, text_encoder):
    """The tiny run exported as `<root>/tiny/1` (max batch 8); returns the version folder."""
    from t2i_keras.serving.export import export_saved_model

    root = tmp_path_factory.mktemp("saved_models") / "tiny"
    return export_saved_model(tiny_run[1], text_encoder, root, max_batch=8)
