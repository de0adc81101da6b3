"""Robust image decoding and the resize policies shared by every real-data reader.

Real photo collections are messy: grayscale and CMYK JPEGs, PNGs with alpha or 16 bits per
channel, truncated downloads, files that are not images at all. Everything here turns any of
them into uint8 RGB, or says clearly why it cannot, using TensorFlow ops only (Pillow is not a
dependency). `decode_image` and `resize_image` are graph-compatible, so the same code runs in a
`tf.data` map (the raw streaming path) and eagerly (`load_image`, which raises `ImageDecodeError`
with a readable reason instead of TensorFlow's op message).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from t2i_keras.data.kinds import RESIZE_POLICIES

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Conversions `decode_image` reports, in the order they are listed in reports.
CONVERSIONS = ("grayscale", "alpha", "cmyk", "sixteen_bit")
# StackGAN (Zhang et al. 2017, code `datasets.py`) crops CUB birds to their box enlarged 1.5x,
# so that the bird fills most of the frame but keeps some context.
BOX_ENLARGEMENT = 1.5

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OP_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]( name: \S*)?")


class ImageDecodeError(ValueError):
    """An image file that cannot be turned into RGB pixels; the message names file and reason."""


def decode_image(contents: tf.Tensor | bytes) -> dict[str, tf.Tensor]:
    """Decodes JPEG, PNG, GIF (first frame), BMP or WebP bytes to RGB, converting properly.

    - grayscale (with or without alpha) is replicated to three channels;
    - alpha is composited on white, because the images a GAN learns from have no transparency
      and a transparent background usually stands for "nothing", i.e. paper white;
    - 16-bit PNGs are decoded at 16 bits and rounded to 8 (`tf.io.decode_image` would truncate
      with a shift, darkening every value by up to one level);
    - CMYK / YCCK JPEGs are converted by TensorFlow's libjpeg wrapper (Adobe inverted CMYK).

    Args:
        contents: the file's bytes, a scalar tf.string (graph-compatible).

    Returns:
        `image` uint8 [H, W, 3]; booleans `grayscale`, `alpha`, `cmyk`, `sixteen_bit` saying
        which conversions were applied (see `CONVERSIONS`).
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    is_png = tf.equal(tf.strings.substr(contents, 0, 8), _PNG_SIGNATURE)
    is_jpeg = tf.logical_and(tf.logical_not(is_png), tf.io.is_jpeg(contents))

    def png():
        decoded = tf.io.decode_png(contents, channels=0, dtype=tf.uint16)
        bit_depth = tf.io.decode_raw(tf.strings.substr(contents, 24, 1), tf.uint8)[0]
        # decode_png scales 8-bit data by 257, so dividing by 257 is exact for those.
        return tf.cast(decoded, tf.float32) / 257.0, tf.shape(decoded)[-1], bit_depth > 8

    def jpeg():
        channels = tf.io.extract_jpeg_shape(contents)[2]
        return tf.cast(tf.io.decode_jpeg(contents, channels=3), tf.float32), channels, False

    def other():
        decoded = tf.io.decode_image(contents, channels=0, expand_animations=False)
        return tf.cast(decoded, tf.float32), tf.shape(decoded)[-1], False

    pixels, channels, sixteen_bit = tf.case(
        [(is_png, png), (is_jpeg, jpeg)], default=other, exclusive=True
    )
    pixels.set_shape([None, None, None])
    grayscale = channels <= 2
    alpha = tf.logical_and(tf.logical_not(is_jpeg), tf.equal(channels % 2, 0))
    rgb = tf.cond(grayscale, lambda: tf.tile(pixels[..., :1], [1, 1, 3]), lambda: pixels[..., :3])
    opacity = tf.where(alpha, pixels[..., -1:] / 255.0, tf.ones_like(pixels[..., :1]))
    rgb = rgb * opacity + 255.0 * (1.0 - opacity)
    return {
        "image": tf.cast(tf.clip_by_value(tf.round(rgb), 0, 255), tf.uint8),
        "grayscale": grayscale,
        "alpha": alpha,
        "cmyk": tf.logical_and(is_jpeg, tf.equal(channels, 4)),
        "sixteen_bit": tf.convert_to_tensor(sixteen_bit),
    }


def _resize(image: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    # Antialiasing matters when shrinking photos ~10x: plain bilinear would alias textures.
    return tf.image.resize(tf.cast(image, tf.float32), tf.stack([height, width]), antialias=True)


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _center_crop(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """The largest centred square, resized to `image_size` (the same pixels as resizing the
    shorter side first and cropping after, but cheaper: only the kept square is resampled)."""
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    square = image[top : top + side, left : left + side]
    return _to_uint8(_resize(square, image_size, image_size))


def _pad(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """The whole image, its longer side resized to `image_size`, centred on black (as
    `tf.image.resize_with_pad`, but keeping antialiasing and exact centring)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = image_size / tf.reduce_max(shape)
    new = tf.maximum(1, tf.cast(tf.round(shape * scale), tf.int32))
    resized = _resize(image, new[0], new[1])
    top, left = (image_size - new[0]) // 2, (image_size - new[1]) // 2
    padded = tf.pad(
        resized,
        [[top, image_size - new[0] - top], [left, image_size - new[1] - left], [0, 0]],
    )
    return _to_uint8(padded)


def _crop_to_box(image: tf.Tensor, box: tf.Tensor) -> tf.Tensor:
    """StackGAN's crop: a square of side 1.5 * max(w, h) around the box centre, clipped to the
    image (so it can become a rectangle at the borders)."""
    shape = tf.shape(image)
    x, y, w, h = tf.unstack(tf.cast(box, tf.float32))
    radius = tf.cast(tf.maximum(w, h) * BOX_ENLARGEMENT / 2, tf.int32)
    cx, cy = tf.cast(x + w / 2, tf.int32), tf.cast(y + h / 2, tf.int32)
    top, bottom = tf.maximum(0, cy - radius), tf.minimum(shape[0], cy + radius)
    left, right = tf.maximum(0, cx - radius), tf.minimum(shape[1], cx + radius)
    valid = tf.logical_and(bottom > top, right > left)
    return tf.cond(valid, lambda: image[top:bottom, left:right], lambda: image)


def resize_image(
    image: tf.Tensor,
    image_size: int,
    policy: str = "center_crop",
    box: tf.Tensor | Sequence[float] | None = None,
) -> tf.Tensor:
    """Resizes an RGB image to a square uint8 [image_size, image_size, 3] (graph-compatible).

    Args:
        image: uint8 [H, W, 3].
        image_size: side of the output square.
        policy: "center_crop" (the largest centred square, resized; loses the sides of wide
            photos), "pad" (the whole image, letterboxed on black) or "bbox" (crop to the
            object's box enlarged 1.5x as in StackGAN, then centre-crop; used for CUB birds).
        box: for "bbox", float [4] (x, y, width, height) in pixels; a box with width or height
            <= 0 (or no box) falls back to "center_crop".
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"Unknown resize policy {policy!r}; choose one of {RESIZE_POLICIES}")
    image = tf.convert_to_tensor(image)
    if policy == "pad":
        out = _pad(image, image_size)
    else:
        if policy == "bbox" and box is not None:
            box = tf.convert_to_tensor(box, tf.float32)
            has_box = tf.logical_and(box[2] > 0, box[3] > 0)
            image = tf.cond(has_box, lambda: _crop_to_box(image, box), lambda: image)
        out = _center_crop(image, image_size)
    out.set_shape([image_size, image_size, 3])
    return out


def decode_and_resize(
    contents: tf.Tensor,
    image_size: int,
    policy: str = "center_crop",
    box: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """`decode_image` then `resize_image`: the map function of every image pipeline."""
    decoded = decode_image(contents)
    decoded["image"] = resize_image(decoded["image"], image_size, policy, box)
    return decoded


def _diagnose(contents: bytes) -> str:
    """Why bytes failed to decode, in words a user can act on."""
    if not contents:
        return "the file is empty"
    if contents.startswith(b"\xff\xd8"):
        if not contents.rstrip(b"\x00").endswith(b"\xff\xd9"):
            return "truncated JPEG: the file ends before the end-of-image marker"
        return "corrupt JPEG data"
    if contents.startswith(_PNG_SIGNATURE):
        if b"IEND" not in contents[-16:]:
            return "truncated PNG: the file ends before the IEND chunk"
        return "corrupt PNG data"
    return "not an image TensorFlow can decode (JPEG, PNG, GIF, BMP or WebP expected)"


def load_image(
    path: str | os.PathLike,
    image_size: int,
    policy: str = "center_crop",
    box: Sequence[float] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Reads, decodes and resizes one image file eagerly.

    Returns:
        uint8 [image_size, image_size, 3], and the conversions applied (names from
        `CONVERSIONS`).

    Raises:
        ImageDecodeError: the file cannot be read or decoded; the message says why.
    """
    try:
        with open(path, "rb") as f:
            contents = f.read()
    except OSError as error:
        raise ImageDecodeError(f"{path}: cannot be read ({error.strerror})") from error
    try:
        out = decode_and_resize(
            tf.constant(contents), image_size, policy, None if box is None else list(box)
        )
    except tf.errors.OpError as error:
        detail = _OP_NOISE.sub("", error.message).strip()
        raise ImageDecodeError(f"{path}: {_diagnose(contents)} ({detail})") from error
    return out["image"].numpy(), [name for name in CONVERSIONS if bool(out[name])]


@dataclasses.dataclass
class LoadedImage:
    """One result of `load_images`: either `image` (and the `conversions` applied) or `error`."""

    index: int
    image: np.ndarray | None
    conversions: list[str]
    error: str | None = None


def load_images(
    paths: Sequence[str | os.PathLike],
    image_size: int,
    policy: str = "center_crop",
    boxes: Sequence[Sequence[float] | None] | None = None,
) -> Iterator[LoadedImage]:
    """Reads, decodes and resizes many files, yielding one `LoadedImage` per path (any order).

    Decoding runs in a parallel `tf.data` map (C++ threads, no GIL), which is several times
    faster than a Python loop on photos. `ignore_errors` drops failing files without a reason, so
    those few are decoded again eagerly, one by one, to report why.
    """
    if not paths:
        return
    if boxes is None:
        boxes = [None] * len(paths)
    box_array = np.array([b if b is not None else (0, 0, 0, 0) for b in boxes], np.float32)
    done = np.zeros(len(paths), bool)
    files = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(paths)), np.array([os.fspath(p) for p in paths]), box_array)
    )
    decoded = files.map(
        lambda index, path, box: (
            index,
            decode_and_resize(tf.io.read_file(path), image_size, policy, box),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    ).ignore_errors()
    for index, out in decoded.as_numpy_iterator():
        done[index] = True
        yield LoadedImage(int(index), out["image"], [c for c in CONVERSIONS if out[c]])
    for index in np.flatnonzero(~done):
        try:
            image, conversions = load_image(paths[index], image_size, policy, boxes[index])
        except ImageDecodeError as error:
            yield LoadedImage(int(index), None, [], str(error))
        else:
            yield LoadedImage(int(index), image, conversions)
