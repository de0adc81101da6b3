"""The demo's HTTP API: info, images as PNGs of the model's size, the same seed giving the same
images, and a clear message for each bad request; with a stand-in model (no TensorFlow)."""

import base64
import io
import urllib.request

import matplotlib.image
import numpy as np
import pytest

from t2i_keras.demo.server import DemoError
from tests.demo.helpers import call, running_demo


class Info:
    name, version, image_size, source = "fake", "3", 16, "a test double"
    example_captions = ("a red flower", "a blue flower")


class FakeSource:
    """Images whose pixels encode (caption index, sample index, seed), so they can be checked."""

    info = Info()

    def __init__(self, error=None):
        self.error, self.calls = error, []

    def generate(self, captions, num_per_caption, seed):
        self.calls.append((captions, num_per_caption, seed))
        if self.error:
            raise self.error
        images = np.zeros((len(captions), num_per_caption, 16, 16, 3), np.uint8)
        for c in range(len(captions)):
            for n in range(num_per_caption):
                images[c, n] = (c * 10, n * 10, seed % 256)
        return images


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.round(matplotlib.image.imread(io.BytesIO(png), format="png") * 255).astype(np.uint8)


def test_page_and_info():
    with running_demo(FakeSource(), max_captions=3, max_images=5) as server:
        with urllib.request.urlopen(server.url) as response:
            page = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/html")
        assert "<textarea" in page and "/api/generate" in page
        assert "http://" not in page and "https://" not in page  # no CDN: works offline
        status, info = call(server, "/api/info")
    assert status == 200
    assert info == {
        "name": "fake",
        "version": "3",
        "image_size": 16,
        "source": "a test double",
        "example_captions": ["a red flower", "a blue flower"],
        "max_captions": 3,
        "max_images": 5,
    }


def test_generate_answers_pngs_of_the_models_images():
    source = FakeSource()
    with running_demo(source) as server:
        body = {"captions": "a red flower\n\n  a blue flower  \n", "num": "2", "seed": 7}
        status, answer = call(server, "/api/generate", body)
    assert status == 200, answer
    assert source.calls == [(["a red flower", "a blue flower"], 2, 7)]
    assert answer["captions"] == ["a red flower", "a blue flower"] and answer["seed"] == 7
    assert answer["image_size"] == 16 and len(answer["images"]) == 2
    for c, row in enumerate(answer["images"]):
        assert len(row) == 2
        for n, url in enumerate(row):
            image = decode(url)
            assert image.shape == (16, 16, 3)
            assert tuple(image[0, 0]) == (c * 10, n * 10, 7)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"captions": "", "num": 2}, "Type at least one caption"),
        ({"captions": " \n \n", "num": 2}, "Type at least one caption"),
        ({"captions": "a\nb\nc\nd", "num": 1}, "4 captions is too many: at most 3 per request"),
        ({"captions": ["a", "b", "c", "d"]}, "4 captions is too many"),
        ({"captions": "a", "num": 0}, "the number of images must be from 1 to 5, got 0"),
        ({"captions": "a", "num": 6}, "the number of images must be from 1 to 5, got 6"),
        ({"captions": "a", "num": "two"}, "the number of images must be a whole number"),
        ({"captions": "a", "seed": -1}, "the seed must be from 0 to"),
        ({"captions": "a", "seed": 1.5}, "the seed must be a whole number"),
        ({"captions": "x" * 1001}, "caption 1 has 1001 characters; at most 1000"),
        ({"captions": 5}, "captions must be text"),
        (b"not json", "the request is not JSON"),
    ],
)
def test_bad_requests_get_a_message_and_reach_no_model(body, message):
    source = FakeSource()
    with running_demo(source, max_captions=3, max_images=5) as server:
        status, answer = call(server, "/api/generate", body)
    assert status == 400 and message in answer["error"]
    assert source.calls == []


def test_model_failures_are_messages_and_bugs_are_500(capfd):
    unreachable = DemoError("the model server failed: cannot reach it: is it running?", 502)
    with running_demo(FakeSource(unreachable)) as server:
        status, answer = call(server, "/api/generate", {"captions": "a"})
    assert status == 502 and answer["error"] == str(unreachable)
    with running_demo(FakeSource(RuntimeError("boom"))) as server:
        status, answer = call(server, "/api/generate", {"captions": "a"})
        assert call(server, "/nowhere")[0] == 404
    assert status == 500 and "a bug" in answer["error"] and "boom" not in answer["error"]
    assert "RuntimeError: boom" in capfd.readouterr().err  # the terminal has the traceback
