"""Clients for a generator behind TensorFlow Serving: REST (row and columnar JSON) and gRPC.

Formats follow TF Serving's REST API document (tensorflow/serving `g3doc/api_rest.md`):

    POST /v1/models/<name>[/versions/<v>]:predict
    row:      {"signature_name": s, "instances": [{"captions": "..."}, ...]}
              -> {"predictions": [<one output per instance>]}  (a dict per instance if several)
    columnar: {"signature_name": s, "inputs": {"captions": [...]}}
              -> {"outputs": <the output>}  (a dict of outputs if several)
    errors:   HTTP 4xx/5xx with {"error": "<message>"}

and gRPC `tensorflow.serving.PredictionService/Predict` with TensorProto inputs and outputs.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping

import numpy as np

from t2i_keras.serving.signatures import SIGNATURE_OUTPUTS
from t2i_keras.utils.sampling import sample_grid

REST_FORMATS = ("row", "columnar")


class ServingError(RuntimeError):
    """The server refused the request, answered with an error, or could not be reached."""


def _as_jsonable(value: np.ndarray):
    if value.dtype.kind in "SO":
        return [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value.tolist()
        ]
    return value.tolist()


def _batched_inputs(inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    if not arrays:
        raise ValueError("a predict request needs at least one input")
    sizes = {name: (a.shape[0] if a.ndim else None) for name, a in arrays.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ValueError(f"every input must be a batch with the same first dimension, got {sizes}")
    return arrays


def encode_rest_request(
    inputs: Mapping[str, object], signature_name: str = "serving_default", format: str = "row"
) -> dict:
    """The JSON body of a TF Serving predict request (row or columnar format)."""
    arrays = _batched_inputs(inputs)
    if format == "row":
        columns = {name: _as_jsonable(a) for name, a in arrays.items()}
        size = len(next(iter(columns.values())))
        instances = [{name: column[i] for name, column in columns.items()} for i in range(size)]
        return {"signature_name": signature_name, "instances": instances}
    if format == "columnar":
        return {
            "signature_name": signature_name,
            "inputs": {name: _as_jsonable(a) for name, a in arrays.items()},
        }
    raise ValueError(f"unknown REST format {format!r}; use one of {REST_FORMATS}")


def decode_rest_response(body: Mapping, output_name: str) -> dict[str, np.ndarray]:
    """Outputs by name from a predict response; a single unnamed output is called `output_name`."""
    if "error" in body:
        raise ServingError(f"the server answered with an error: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], Mapping):
            return {name: np.asarray([row[name] for row in rows]) for name in rows[0]}
        return {output_name: np.asarray(rows)}
    if "outputs" in body:
        outputs = body["outputs"]
        if isinstance(outputs, Mapping):
            return {name: np.asarray(value) for name, value in outputs.items()}
        return {output_name: np.asarray(outputs)}
    raise ServingError(
        f"not a TF Serving predict response (no predictions/outputs): {str(body)[:200]}"
    )


def rest_predict_url(base_url: str, model_name: str, version: int | None = None) -> str:
    """`<base_url>/v1/models/<name>[/versions/<v>]:predict`, e.g. base_url http://localhost:8501."""
    path = f"/v1/models/{model_name}" + (f"/versions/{int(version)}" if version is not None else "")
    return base_url.rstrip("/") + path + ":predict"


class RestClient:
    """Predict calls over TF Serving's REST API (port 8501 in the official Docker image).

    Args:
        base_url: str, e.g. "http://localhost:8501".
        model_name: str, the model's name in models.config.
        version: int or None (default, the newest version the server has loaded).
        timeout: float, seconds to wait for an answer (default 60).
        format: "row" (default, `instances`) or "columnar" (`inputs`).

    Example:
        client = RestClient("http://localhost:8501", "flowers")
        images = client.predict({"captions": ["a red flower"]})["images"]  # uint8 [1, H, W, 3]
    """

    def __init__(
        self,
        base_url: str,
        model_name: str,
        version: int | None = None,
        timeout: float = 60.0,
        format: str = "row",
    ):
        if format not in REST_FORMATS:
            raise ValueError(f"unknown REST format {format!r}; use one of {REST_FORMATS}")
        self.url = rest_predict_url(base_url, model_name, version)
        self.timeout, self.format = timeout, format

    def predict(
        self, inputs: Mapping[str, object], signature_name: str = "serving_default"
    ) -> dict[str, np.ndarray]:
        body = json.dumps(encode_rest_request(inputs, signature_name, self.format)).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise ServingError(f"HTTP {error.code} from {self.url}: {_error_text(error)}") from None
        except (TimeoutError, socket.timeout):
            raise ServingError(f"{self.url} did not answer within {self.timeout:g} s") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, (TimeoutError, socket.timeout)):
                raise ServingError(f"{self.url} did not answer within {self.timeout:g} s") from None
            raise ServingError(
                f"cannot reach {self.url} ({error.reason}): is the server running?"
            ) from None
        except json.JSONDecodeError:
            raise ServingError(f"{self.url} answered with something other than JSON") from None
        return decode_rest_response(answer, SIGNATURE_OUTPUTS.get(signature_name, "output"))


def _error_text(error: urllib.error.HTTPError) -> str:
    raw = error.read()
    try:
        return json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")[:500] or error.reason


class GrpcClient:
    """Predict calls over TF Serving's gRPC API (port 8500 in the official Docker image).

    Args:
        target: str, "host:port".
        model_name: str, the model's name in models.config.
        version: int or None (default, the newest version).
        timeout: float, seconds per call (default 60).
        max_message_bytes: int, the largest answer accepted (images add up: default 256 MiB).

    Example:
        client = GrpcClient("localhost:8500", "flowers")
        images = client.predict({"captions": ["a red flower"]})["images"]
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        version: int | None = None,
        timeout: float = 60.0,
        max_message_bytes: int = 256 << 20,
    ):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target, self.model_name, self.version, self.timeout = (
            target,
            model_name,
            version,
            timeout,
        )
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(
        self, inputs: Mapping[str, object], signature_name: str = "serving_default"
    ) -> dict[str, np.ndarray]:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature_name
        if self.version is not None:
            request.model_spec.version.value = int(self.version)
        for name, value in _batched_inputs(inputs).items():
            if value.dtype.kind == "U":
                value = value.astype(object)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ServingError(
                    f"{self.target} did not answer within {self.timeout:g} s"
                ) from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise ServingError(f"cannot reach {self.target}: is the server running?") from None
            raise ServingError(f"{code.name} from {self.target}: {error.details()}") from None
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def close(self) -> None:
        self._channel.close()


def images_from_outputs(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The `images` output as uint8 [N, H, W, 3] (REST returns JSON numbers)."""
    if "images" not in outputs:
        raise ServingError(f"the answer holds no 'images' output, only {sorted(outputs)}")
    images = np.asarray(outputs["images"])
    if (
        images.ndim != 4
        or images.shape[-1] != 3
        or images.size
        and (images.min() < 0 or images.max() > 255)
    ):
        raise ServingError(f"'images' is not a batch of uint8 RGB images: shape {images.shape}")
    return images.astype(np.uint8)


def request_images(
    client: RestClient | GrpcClient,
    captions: list[str],
    num_per_caption: int = 1,
    seed: int | None = None,
    z_dim: int = 100,
) -> np.ndarray:
    """uint8 [len(captions), num_per_caption, H, W, 3] from a served generator.

    Without a seed the server draws fresh noise (`serving_default`); with one, the noise is drawn
    here and sent (`generate_with_noise`), so the same seed gives the same images.
    """
    captions = np.asarray(captions, dtype=object)
    if seed is None:
        repeated = np.repeat(captions, num_per_caption)
        images = images_from_outputs(client.predict({"captions": repeated}, "serving_default"))
        return images.reshape(len(captions), num_per_caption, *images.shape[1:])

    def generate(repeated, noise):
        inputs = {"captions": repeated, "noise": noise}
        return images_from_outputs(client.predict(inputs, "generate_with_noise"))

    return sample_grid(generate, captions, num_per_caption, seed, z_dim)
