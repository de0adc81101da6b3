"""A test double for TensorFlow Serving: answers REST and gRPC predict calls with a SavedModel.

TF Serving cannot run on our CI machines, so client tests talk to this stand-in instead. It speaks
the formats TF Serving documents (g3doc/api_rest.md; PredictionService.Predict) closely enough to
check request encoding and response decoding end to end: URL routing with optional versions, row
and columnar bodies, `{"error": ...}` answers with HTTP 400/404, INVALID_ARGUMENT over gRPC. It is
not a model server: one model, one version, no batching, and it lives in tests/ only.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf

_PREDICT_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?:predict$")


class StandInModelServer:
    """Serves one loaded SavedModel as `model_name`, version `version`, over REST and/or gRPC.

    Args:
        model: the object returned by `tf.saved_model.load`.
        model_name: str, the name clients must use.
        version: int, the only version served.
        delay: float, seconds to wait before answering (to test client timeouts).
    """

    def __init__(self, model, model_name: str, version: int = 1, delay: float = 0.0):
        self.model, self.model_name, self.version, self.delay = model, model_name, version, delay
        self._lock = threading.Lock()  # one request at a time through the model, like a session
        self._http = None
        self._grpc = None

    # -- the model ---------------------------------------------------------------------------
    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if signature_name not in self.model.signatures:
            raise KeyError(f'Serving signature name: "{signature_name}" not found in signature def')
        function = self.model.signatures[signature_name]
        specs = function.structured_input_signature[1]
        if set(inputs) != set(specs):
            raise ValueError(f"expected inputs {sorted(specs)}, got {sorted(inputs)}")
        tensors = {}
        for name, spec in specs.items():
            tensors[name] = tf.convert_to_tensor(inputs[name], dtype=spec.dtype)
            if not spec.shape.is_compatible_with(tensors[name].shape):
                raise ValueError(
                    f"input {name} has shape {tensors[name].shape}, expected {spec.shape}"
                )
        time.sleep(self.delay)
        with self._lock:
            outputs = function(**tensors)
        return {name: value.numpy() for name, value in outputs.items()}

    def _route(self, path: str) -> str | None:
        """None if the path names this model (and version), else TF Serving's error message."""
        match = _PREDICT_PATH.match(path)
        if not match:
            return f"Malformed request: POST {path}"
        if match["name"] != self.model_name or (
            match["version"] is not None and int(match["version"]) != self.version
        ):
            return f"Servable not found for request: {path}"
        return None

    # -- REST -------------------------------------------------------------------------------
    def start_rest(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                problem = server._route(self.path)
                if problem:
                    return self._answer(404, {"error": problem})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    signature = body.get("signature_name", "serving_default")
                    columnar = "inputs" in body
                    outputs = server.run(signature, _rest_inputs(body))
                except Exception as error:  # the server answers every bad request, never dies
                    return self._answer(400, {"error": _message(error)})
                names = list(outputs)
                single = len(names) == 1
                if columnar:
                    value = (
                        _jsonable(outputs[names[0]])
                        if single
                        else {k: _jsonable(v) for k, v in outputs.items()}
                    )
                    answer = {"outputs": value}
                else:
                    rows = len(outputs[names[0]])
                    answer = {
                        "predictions": [
                            _jsonable(outputs[names[0]][i])
                            if single
                            else {k: _jsonable(outputs[k][i]) for k in names}
                            for i in range(rows)
                        ]
                    }
                self._answer(200, answer)

            def _answer(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    # -- gRPC -------------------------------------------------------------------------------
    def start_grpc(self) -> str:
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        server = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                spec = request.model_spec
                if spec.name != server.model_name or (
                    spec.HasField("version") and spec.version.value != server.version
                ):
                    context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {spec.name}")
                try:
                    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                    outputs = server.run(spec.signature_name or "serving_default", inputs)
                except Exception as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(error))
                response = predict_pb2.PredictResponse()
                response.model_spec.CopyFrom(spec)
                for name, value in outputs.items():
                    response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
                return response

        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2),
            options=[
                ("grpc.max_receive_message_length", 256 << 20),
                ("grpc.max_send_message_length", 256 << 20),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return f"127.0.0.1:{port}"

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=None)


def _rest_inputs(body: dict) -> dict[str, np.ndarray]:
    if "instances" in body:
        instances = body["instances"]
        if instances and isinstance(instances[0], dict):
            return {k: np.asarray([row[k] for row in instances]) for k in instances[0]}
        raise ValueError("row format instances must be objects naming each input")
    if "inputs" in body:
        return {k: np.asarray(v) for k, v in body["inputs"].items()}
    raise ValueError('the body needs "instances" (row format) or "inputs" (columnar format)')


def _jsonable(value: np.ndarray):
    return value.tolist() if value.dtype.kind not in "SO" else [v.decode() for v in value.tolist()]


def _message(error: Exception) -> str:
    return getattr(error, "message", None) or str(error)
