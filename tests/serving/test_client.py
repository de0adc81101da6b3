"""TF Serving clients: request encoding and response decoding against the formats TF Serving
documents (g3doc/api_rest.md), then end to end over REST and gRPC against a stand-in server that
runs the exported SavedModel (tests/serving_double.py), including errors and timeouts."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from t2i_keras.serving import client as serving
from t2i_keras.serving import export
from tests.serving_double import StandInModelServer


class TestRestFormats:
    def test_row_format_request_names_every_input_per_instance(self):
        body = serving.encode_rest_request(
            {
                "captions": ["a red flower", "b"],
                "noise": np.array([[0.5, 1.0], [2.0, 3.0]], np.float32),
            },
            signature_name="generate_with_noise",
            format="row",
        )
        assert body == {
            "signature_name": "generate_with_noise",
            "instances": [
                {"captions": "a red flower", "noise": [0.5, 1.0]},
                {"captions": "b", "noise": [2.0, 3.0]},
            ],
        }

    def test_columnar_format_request_holds_one_list_per_input(self):
        body = serving.encode_rest_request(
            {"captions": np.array([b"x", "é".encode()], dtype=object)}, format="columnar"
        )
        assert body == {"signature_name": "serving_default", "inputs": {"captions": ["x", "é"]}}

    def test_bad_requests_are_refused_before_sending(self):
        with pytest.raises(ValueError, match="same first dimension"):
            serving.encode_rest_request({"captions": ["a", "b"], "noise": np.zeros((3, 2))})
        with pytest.raises(ValueError, match="unknown REST format"):
            serving.encode_rest_request({"captions": ["a"]}, format="xml")
        with pytest.raises(ValueError, match="at least one input"):
            serving.encode_rest_request({})

    def test_responses_decode_in_every_documented_shape(self):
        single_row = serving.decode_rest_response({"predictions": [[1, 2], [3, 4]]}, "images")
        np.testing.assert_array_equal(single_row["images"], [[1, 2], [3, 4]])
        named_rows = serving.decode_rest_response(
            {"predictions": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}]}, "images"
        )
        np.testing.assert_array_equal(named_rows["b"], [[1, 2], [3, 4]])
        np.testing.assert_array_equal(named_rows["a"], [1, 2])
        single_column = serving.decode_rest_response({"outputs": [[5, 6]]}, "embeddings")
        np.testing.assert_array_equal(single_column["embeddings"], [[5, 6]])
        named_columns = serving.decode_rest_response({"outputs": {"x": [1], "y": [2]}}, "z")
        assert set(named_columns) == {"x", "y"}
        with pytest.raises(serving.ServingError, match="answered with an error: boom"):
            serving.decode_rest_response({"error": "boom"}, "images")
        with pytest.raises(serving.ServingError, match="not a TF Serving predict response"):
            serving.decode_rest_response({"result": 1}, "images")

    def test_predict_urls(self):
        assert (
            serving.rest_predict_url("http://h:8501/", "flowers")
            == "http://h:8501/v1/models/flowers:predict"
        )
        assert (
            serving.rest_predict_url("http://h:8501", "flowers", 3)
            == "http://h:8501/v1/models/flowers/versions/3:predict"
        )

    def test_images_must_be_rgb_pixels(self):
        with pytest.raises(serving.ServingError, match="no 'images' output"):
            serving.images_from_outputs({"embeddings": np.zeros((1, 4))})
        with pytest.raises(serving.ServingError, match="not a batch of uint8 RGB"):
            serving.images_from_outputs({"images": np.full((1, 2, 2, 3), 300)})


@pytest.fixture(scope="module")
def server(exported_model):
    double = StandInModelServer(export.load_saved_model(exported_model), "tiny", version=1)
    rest_url, grpc_target = double.start_rest(), double.start_grpc()
    yield double, rest_url, grpc_target
    double.stop()


@pytest.mark.parametrize("format", ["row", "columnar"])
def test_rest_round_trip_gives_the_exports_images(server, exported_model, format):
    _, rest_url, _ = server
    client = serving.RestClient(rest_url, "tiny", version=1, format=format)
    images = serving.request_images(client, ["a red flower", "a blue flower"], 2, seed=3)
    expected = export.generate_from_saved_model(
        export.load_saved_model(exported_model), ["a red flower", "a blue flower"], 2, seed=3
    )
    assert images.shape == (2, 2, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, expected)
    fresh = serving.request_images(client, ["a red flower"], 2)
    assert fresh.shape == (1, 2, 32, 32, 3)
    embeddings = client.predict({"captions": ["a red flower"]}, "embed")["embeddings"]
    assert embeddings.shape == (1, 512)


def test_grpc_round_trip_gives_the_same_images_as_rest(server):
    _, rest_url, grpc_target = server
    grpc_client = serving.GrpcClient(grpc_target, "tiny", version=1)
    rest_client = serving.RestClient(rest_url, "tiny")
    try:
        by_grpc = serving.request_images(grpc_client, ["a pink flower"], 3, seed=7)
        by_rest = serving.request_images(rest_client, ["a pink flower"], 3, seed=7)
        np.testing.assert_array_equal(by_grpc, by_rest)
        embedded = grpc_client.predict({"captions": np.array(["a", "b"])}, "embed")
        assert embedded["embeddings"].dtype == np.float32 and embedded["embeddings"].shape == (
            2,
            512,
        )
    finally:
        grpc_client.close()


def test_server_errors_reach_the_caller_with_their_message(server):
    _, rest_url, grpc_target = server
    too_many = ["a red flower"] * 9  # the export's maximum batch is 8
    with pytest.raises(serving.ServingError, match=r"(?s)HTTP 400 .*maximum batch is 8"):
        serving.RestClient(rest_url, "tiny").predict({"captions": too_many})
    with pytest.raises(serving.ServingError, match=r"HTTP 404 .*Servable not found"):
        serving.RestClient(rest_url, "nope").predict({"captions": ["a"]})
    with pytest.raises(serving.ServingError, match=r"HTTP 404"):
        serving.RestClient(rest_url, "tiny", version=2).predict({"captions": ["a"]})
    grpc_client = serving.GrpcClient(grpc_target, "tiny")
    try:
        with pytest.raises(
            serving.ServingError, match=r"(?s)INVALID_ARGUMENT .*maximum batch is 8"
        ):
            grpc_client.predict({"captions": too_many})
        with pytest.raises(serving.ServingError, match=r"(?s)INVALID_ARGUMENT .*noise"):
            grpc_client.predict(
                {"captions": ["a"], "noise": np.zeros((1, 7), np.float32)}, "generate_with_noise"
            )
    finally:
        grpc_client.close()


def test_timeouts_and_unreachable_servers_are_clear_errors(exported_model):
    slow = StandInModelServer(export.load_saved_model(exported_model), "tiny", delay=2.0)
    rest_url, grpc_target = slow.start_rest(), slow.start_grpc()
    try:
        with pytest.raises(serving.ServingError, match="did not answer within 0.3 s"):
            serving.RestClient(rest_url, "tiny", timeout=0.3).predict({"captions": ["a"]})
        grpc_client = serving.GrpcClient(grpc_target, "tiny", timeout=0.3)
        with pytest.raises(serving.ServingError, match="did not answer within 0.3 s"):
            grpc_client.predict({"captions": ["a"]})
        grpc_client.close()
    finally:
        slow.stop()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(serving.ServingError, match="is the server running"):
        serving.RestClient(f"http://127.0.0.1:{port}", "tiny", timeout=5).predict(
            {"captions": ["a"]}
        )
    grpc_client = serving.GrpcClient(f"127.0.0.1:{port}", "tiny", timeout=5)
    with pytest.raises(serving.ServingError, match="is the server running"):
        grpc_client.predict({"captions": ["a"]})
    grpc_client.close()


def test_serve_client_command_writes_a_grid(server, tmp_path):
    _, rest_url, grpc_target = server
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = ["-m", "t2i_keras", "serve-client"]
    for flags in (
        ["--rest", rest_url, "--format", "columnar"],
        ["--grpc", grpc_target, "--seed", "1"],
    ):
        out = tmp_path / f"{flags[0][2:]}.png"
        result = subprocess.run(
            [
                sys.executable,
                *command,
                *flags,
                "--model",
                "tiny",
                "a red flower",
                "a blue flower",
                "--num",
                "2",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert out.stat().st_size > 1000
    refused = subprocess.run(
        [sys.executable, *command, "--rest", rest_url, "--model", "tiny", *["x"] * 9, "--num", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert refused.returncode != 0 and "maximum batch is 8" in refused.stderr
