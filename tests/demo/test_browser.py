"""The demo page in a real browser (headless Chromium driven by Playwright): type a caption,
submit, wait for the images, check they are decoded PNGs of the export's size, and save a
screenshot; empty input and too many captions show their messages on the page.

Chromium is Debian's package (`scripts/bootstrap.sh test` installs it where it can); Playwright
drives it through `executable_path`, so no browser download is needed. Without either, the test
skips and says why. The README's screenshot is this test's, taken with the quickstart export:

    T2I_DEMO_MODEL=saved_models/quickstart T2I_DEMO_SCREENSHOT=scripts/assets/demo.png \
        .venv/bin/python -m pytest tests/demo/test_browser.py
"""

import base64
import io
import os
import pathlib
import shutil

import matplotlib.image
import numpy as np
import pytest

from t2i_keras.demo.models import SavedModelSource
from tests.demo.helpers import running_demo

CAPTIONS = [
    "this flower has red petals and a yellow centre",
    "a flower with blue petals",
    "a purple flower with pointed petals",
]


def chromium() -> str:
    for name in (os.environ.get("T2I_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = name and shutil.which(name)
        if path:
            return path
    pytest.skip(
        "no Chromium found (apt-get install chromium, or set T2I_CHROMIUM); "
        "`bash scripts/bootstrap.sh test` installs it where apt-get can"
    )


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the test extra has it)"
    )
    executable = chromium()
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def demo_source(request):
    model = os.environ.get("T2I_DEMO_MODEL")
    return SavedModelSource(model or request.getfixturevalue("exported_model"))


@pytest.mark.slow
def test_type_captions_and_see_the_images(browser, demo_source, tmp_path):
    size = demo_source.info.image_size
    with running_demo(demo_source) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(server.url)
        page.wait_for_selector("#examples button")  # the info has arrived
        assert f"{size}×{size} images" in page.inner_text("#model")
        assert demo_source.info.name in page.inner_text("#model")

        page.fill("#captions", "\n".join(CAPTIONS))
        page.fill("#num", "2" if not os.environ.get("T2I_DEMO_MODEL") else "6")
        page.fill("#seed", "0")
        page.click("#generate")
        page.wait_for_selector("img.generated", timeout=120_000)
        images = page.eval_on_selector_all(
            "img.generated",
            "imgs => imgs.map(i => ({src: i.src, w: i.naturalWidth, h: i.naturalHeight,"
            " complete: i.complete}))",
        )
        per_caption = 2 if not os.environ.get("T2I_DEMO_MODEL") else 6
        assert len(images) == len(CAPTIONS) * per_caption
        for image in images:  # the browser decoded each PNG at the export's size ...
            assert image["complete"] and (image["w"], image["h"]) == (size, size)
            png = base64.b64decode(image["src"].split(",", 1)[1])
            pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
            assert pixels.shape == (size, size, 3)  # ... and so does a PNG reader
        first = np.round(pixels * 255).astype(np.uint8)
        expected = demo_source.generate(CAPTIONS, per_caption, 0)[-1, -1]
        np.testing.assert_array_equal(first, expected)  # the model's own image, seed 0
        assert "image(s) in" in page.inner_text("#status")
        screenshot = pathlib.Path(os.environ.get("T2I_DEMO_SCREENSHOT") or tmp_path / "demo.png")
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000

        page.fill("#captions", "   ")
        page.click("#generate")
        page.wait_for_selector("#status.error")
        assert "Type at least one caption" in page.inner_text("#status")
        page.fill("#captions", "\n".join(f"caption {i}" for i in range(9)))
        page.click("#generate")
        page.wait_for_function("document.querySelector('#status').textContent.includes('too many')")
        assert "9 captions is too many: at most 8" in page.inner_text("#status")
        page.close()
