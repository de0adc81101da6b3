"""Shared test set-up: quiet TensorFlow, offline, deterministic, and the path to ../shared/data."""

import contextlib
import os
import pathlib
import resource
import signal
import subprocess
import sys

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


@pytest.fixture(scope="session")
def coco_mini() -> pathlib.Path:
    """80 COCO photographs with captions (../shared/data/coco-mini); skips where absent."""
    path = SHARED_DATA / "coco-mini"
    if not (path / "annotations").is_dir():
        pytest.skip(f"COCO sample not found at {path} (it lives beside the repo in CI)")
    return path


@pytest.fixture(autouse=True)
def seeded_randomness():
    """Every test starts from the same random state (Python, NumPy, TensorFlow and Keras' weight
    initializers), whatever ran before it, so a test passes or fails the same way every time."""
    import keras

    keras.utils.set_random_seed(0)


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


@contextlib.contextmanager
def _file_size_limit(max_bytes: int):
    # RLIMIT_FSIZE makes every write past `max_bytes` fail with EFBIG, for root too (tests run as
    # root, which ignores read-only permissions, and mounting a small tmpfs is not allowed
    # everywhere): a real write failure in the real writers (zipfile, h5py, TF's file system).
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)


@pytest.fixture
def disk_full():
    """`with disk_full(max_bytes):` makes this process's file writes fail past `max_bytes`."""
    return _file_size_limit


LOCK_HOLDER = """
import sys, time
from t2i_keras.utils.files import exclusive_lock
with exclusive_lock(sys.argv[1], sys.argv[2]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def lock_holder():
    """`holder = lock_holder(folder, purpose)` starts a process holding the folder's lock (it
    returns once the lock is taken); the fixture kills it at the end."""
    started = []

    def start(directory, purpose):
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(directory), purpose],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.fixture
def channels_first_default():
    """Keras' global image_data_format set to channels_first, as a ~/.keras/keras.json can set it,
    and restored afterwards. Yields `data_formats(model)`: the layouts of every layer (nested ones
    included) that has one, which must be {"channels_last"} for our NHWC networks."""
    import keras

    def data_formats(model) -> set[str]:
        return {
            layer.data_format for layer in model._flatten_layers() if hasattr(layer, "data_format")
        }

    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        yield data_formats
    finally:
        keras.config.set_image_data_format(previous)
