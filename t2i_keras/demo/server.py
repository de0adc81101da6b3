"""The demo's web server (the standard library's `http.server`): one page and a small JSON API.

    GET  /               the page (`page.html`: no external assets, works offline)
    GET  /api/info       {"name", "version", "image_size", "source", "example_captions",
                          "max_captions", "max_images"}
    POST /api/generate   {"captions": [str, ...] or "one per line", "num": int, "seed": int}
                         -> {"captions": [...], "seed": int, "image_size": int, "seconds": float,
                             "images": [[PNG data URL, ...] per caption]}
    errors               {"error": "<what is wrong and what to do>"}: 400 for the request, 502
                         when the model server does not answer, 500 for a bug (logged here)

Requests are checked here, so the page and any other client get the same messages.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import numpy as np

from t2i_keras.utils.png import png_data_url

PAGE = pathlib.Path(__file__).with_name("page.html")
MAX_CAPTION_CHARS = 1000
MAX_BODY_BYTES = 1 << 20


class DemoSource(Protocol):
    """What `t2i_keras.demo.models` provides: `info` (a ModelInfo) and `generate`."""

    info: object

    def generate(self, captions: list[str], num_per_caption: int, seed: int) -> np.ndarray: ...


class DemoError(Exception):
    """A request the demo refuses, or a model server that does not answer; the page shows the
    message as is.

    Attributes:
        status: the HTTP status of the answer (400: the request, 502: the model server).
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_request(body: dict, max_captions: int, max_images: int) -> tuple[list[str], int, int]:
    """(captions, images per caption, seed) of a generate request, or a DemoError."""
    if not isinstance(body, dict):
        raise DemoError("send a JSON object with captions, num and seed")
    raw = body.get("captions", "")
    if isinstance(raw, str):
        raw = raw.splitlines()
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise DemoError("captions must be text, one caption per line")
    captions = [c.strip() for c in raw if c.strip()]
    if not captions:
        raise DemoError("Type at least one caption (one per line), or pick an example.")
    if len(captions) > max_captions:
        raise DemoError(
            f"{len(captions)} captions is too many: at most {max_captions} per request "
            "(one per line). Remove some lines."
        )
    for i, caption in enumerate(captions, 1):
        if len(caption) > MAX_CAPTION_CHARS:
            raise DemoError(
                f"caption {i} has {len(caption)} characters; at most {MAX_CAPTION_CHARS}"
            )
    num = _integer(body.get("num", 4), "the number of images")
    if not 1 <= num <= max_images:
        raise DemoError(f"the number of images must be from 1 to {max_images}, got {num}")
    seed = _integer(body.get("seed", 0), "the seed")
    if not 0 <= seed < 2**32:
        raise DemoError(f"the seed must be from 0 to {2**32 - 1}, got {seed}")
    return captions, num, seed


def _integer(value, what: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DemoError(f"{what} must be a whole number, got {value!r}")
    return value


class DemoServer(ThreadingHTTPServer):
    """Serves the page and the API for one model.

    Args:
        address: (host, port); port 0 picks a free one (see `url`).
        source: the model (`t2i_keras.demo.models`).
        max_captions: captions per request (default 8).
        max_images: images per caption (default 8).

    Example:
        server = DemoServer(("127.0.0.1", 8000), SavedModelSource("saved_models/quickstart"))
        server.serve_forever()
    """

    daemon_threads = True

    def __init__(self, address, source: DemoSource, max_captions: int = 8, max_images: int = 8):
        self.source, self.max_captions, self.max_images = source, max_captions, max_images
        self.page = PAGE.read_bytes()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"

    def info(self) -> dict:
        info = self.source.info
        return {
            "name": info.name,
            "version": info.version,
            "image_size": info.image_size,
            "source": info.source,
            "example_captions": list(info.example_captions),
            "max_captions": self.max_captions,
            "max_images": self.max_images,
        }

    def generate(self, body: dict) -> dict:
        captions, num, seed = parse_request(body, self.max_captions, self.max_images)
        start = time.perf_counter()
        images = self.source.generate(captions, num, seed)
        seconds = time.perf_counter() - start
        print(f"{len(captions)} caption(s) x {num} image(s), seed {seed}: {seconds:.2f} s")
        return {
            "captions": captions,
            "seed": seed,
            "image_size": int(images.shape[2]),
            "seconds": round(seconds, 3),
            "images": [[png_data_url(image) for image in row] for row in images],
        }


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path == "/api/info":
            self._json(HTTPStatus.OK, self.server.info())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {path}"})

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/api/generate":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise DemoError(f"the request is larger than {MAX_BODY_BYTES} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                raise DemoError("the request is not JSON") from None
            self._json(HTTPStatus.OK, self.server.generate(body))
        except DemoError as error:
            self._json(error.status, {"error": str(error)})
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": "the demo failed on this request (a bug; its terminal has the details)"},
            )

    def log_message(self, format, *args):  # the generate line above is the log
        pass

    def _json(self, status, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
