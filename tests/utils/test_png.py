"""The standard-library PNG encoder: what a PNG reader (Pillow, through matplotlib) decodes is the
image that went in."""

import base64
import io

import matplotlib.image
import numpy as np
import pytest

from t2i_keras.utils import png


@pytest.mark.parametrize("shape", [(32, 32, 3), (5, 7, 3), (1, 1, 3)])
def test_a_png_reader_decodes_the_same_pixels(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = matplotlib.image.imread(io.BytesIO(png.encode_png(image)), format="png")
    np.testing.assert_array_equal(np.round(decoded * 255).astype(np.uint8), image)


def test_data_urls_and_bad_input():
    url = png.png_data_url(np.zeros((2, 3, 3), np.uint8))
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(png.SIGNATURE)
    with pytest.raises(ValueError, match="uint8"):
        png.encode_png(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        png.encode_png(np.zeros((2, 2), np.uint8))
