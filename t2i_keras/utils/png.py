"""uint8 RGB images as PNG bytes with the standard library (zlib), for clients without TensorFlow.

The demo page (`t2i_keras.demo`) sends each generated image as a PNG; encoding here keeps the REST
demo free of TensorFlow and of an imaging library. Format: PNG 1.2 (W3C), 8-bit truecolour, no
interlace, filter type 0 on every row.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of one uint8 image [H, W, 3]."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def png_data_url(image: np.ndarray) -> str:
    """`data:image/png;base64,...` of one uint8 image, for an <img src>."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
