"""A demo server on a free port in a background thread, and JSON calls to it."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request

from t2i_keras.demo.server import DemoServer


@contextlib.contextmanager
def running_demo(source, **limits):
    server = DemoServer(("127.0.0.1", 0), source, **limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def call(server: DemoServer, path: str, body: dict | bytes | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of a GET (no body) or POST."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
