"""The demo's model sources give the library's own images (an export, a run, TF Serving's REST
API through the stand-in server), say what they are, and turn a model server that went away into
a message; `t2i-keras demo` serves the page from a fresh process."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from t2i_keras.demo.models import RestSource, RunSource, SavedModelSource
from t2i_keras.demo.server import DemoError
from t2i_keras.serving import client as serving
from t2i_keras.serving import export
from t2i_keras.training.runs import generate_images
from tests.demo.helpers import call, running_demo
from tests.serving_double import StandInModelServer

CAPTIONS = ["a red flower", "a blue flower"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_saved_model_source(exported_model):
    source = SavedModelSource(exported_model.parent)  # the base path: its newest version
    assert (source.info.name, source.info.version, source.info.image_size) == ("tiny", "1", 32)
    assert str(exported_model) in source.info.source
    expected = export.generate_from_saved_model(source.model, CAPTIONS, 2, seed=5)
    np.testing.assert_array_equal(source.generate(CAPTIONS, 2, 5), expected)
    with pytest.raises(DemoError, match="2 caption.* = 10 images, but the model draws at most 8"):
        source.generate(CAPTIONS, 5, 0)  # the tiny export's max batch is 8


def test_run_source(tiny_run, text_encoder):
    run_dir, gan = tiny_run
    source = RunSource(run_dir)
    assert source.info.version == "run" and source.info.image_size == 32
    assert source.info.example_captions == ("a red flower", "a blue flower")
    expected = generate_images(gan, text_encoder, CAPTIONS, 3, seed=1)
    np.testing.assert_array_equal(source.generate(CAPTIONS, 3, 1), expected)


def test_rest_source_and_a_server_that_goes_away(exported_model):
    double = StandInModelServer(export.load_saved_model(exported_model), "tiny", version=1)
    url = double.start_rest()
    try:
        source = RestSource(url, "tiny", version=1, timeout=30)
        assert (source.info.name, source.info.version, source.info.image_size) == ("tiny", "1", 32)
        expected = export.generate_from_saved_model(double.model, CAPTIONS, 2, seed=4)
        np.testing.assert_array_equal(source.generate(CAPTIONS, 2, 4), expected)
        with pytest.raises(DemoError, match="at most 8 at once"):
            source.generate(CAPTIONS, 5, 0)
        assert RestSource(url, "tiny").info.version == "newest served"  # no status API here
    finally:
        double.stop()
    with running_demo(source) as demo:
        status, answer = call(demo, "/api/generate", {"captions": "a red flower"})
    assert status == 502
    assert (
        "the model server failed" in answer["error"] and "is the server running" in answer["error"]
    )
    with pytest.raises(serving.ServingError, match="is the server running"):
        RestSource(f"http://127.0.0.1:{free_port()}", "tiny", timeout=5)


def test_demo_command_refuses_an_unreachable_server():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "t2i_keras", "demo", "--rest", f"http://127.0.0.1:{port}"]
        + ["--name", "tiny", "--timeout", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("t2i-keras demo: error: cannot reach")
    assert "is the server running?" in line


@pytest.mark.slow
def test_demo_command_serves_the_page(exported_model):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "t2i_keras", "demo", "--model", str(exported_model.parent)]
        + ["--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert first.strip() == "Model tiny, version 1, 32x32 images", process.stderr.read()
        url = second.split("Demo at ", 1)[1].split(" ", 1)[0]

        class Server:  # what `call` needs of a DemoServer
            pass

        server = Server()
        server.url = url
        status, info = call(server, "/api/info")
        assert status == 200 and info["name"] == "tiny" and info["image_size"] == 32
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert err == ""  # quiet: no TensorFlow start-up lines, no request log
