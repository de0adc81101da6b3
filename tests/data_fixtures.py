"""Tiny on-disk datasets for the reader tests, built in tmp folders with TensorFlow's encoders.

Each `make_*` function writes a layout with a few good images and, optionally, every kind of bad
data a reader must survive; it returns what a correct reader should find, so tests compare
against the fixture instead of repeating its details.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import struct

import numpy as np
import tensorflow as tf

SIZE = 12  # source images are 12 x 16 (not square, so that resize policies differ)


def pixels(seed: int, height: int = SIZE, width: int = 16, channels: int = 3) -> np.ndarray:
    """A smooth random image (JPEG keeps smooth images close to their pixels)."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 256, (2, 2, channels)).astype(np.float32)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    top = corners[0, 0] * (1 - x) + corners[0, 1] * x
    bottom = corners[1, 0] * (1 - x) + corners[1, 1] * x
    return np.round(top * (1 - y) + bottom * y).astype(np.uint8)


def write(path: pathlib.Path, data: bytes | str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def jpeg(image: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(image, quality=95).numpy()


def png(image: np.ndarray) -> bytes:
    return tf.io.encode_png(image).numpy()


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes, bytes]:
    """(marker segments before the scan, scan header, entropy-coded scan data) of a baseline
    JPEG."""
    segments, i = [], 2
    while True:
        marker = data[i + 1]
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        payload = data[i + 4 : i + 2 + length]
        if marker == 0xDA:
            return segments, payload, data[i + 2 + length : data.rindex(b"\xff\xd9")]
        segments.append((marker, payload))
        i += 2 + length


def cmyk_jpeg(stored: np.ndarray) -> bytes:
    """A 4-component (Adobe CMYK) JPEG, built by hand since TensorFlow only encodes 1 or 3.

    Each channel is encoded as a grayscale JPEG; a baseline JPEG may carry one scan per
    component, so the four single-component scans are joined under one 4-component frame header
    with an Adobe APP14 marker (transform 0: CMYK, no colour transform). `stored` holds the
    stored values (Adobe inverts them: 255 means no ink).
    """
    height, width, _ = stored.shape
    parts = [_jpeg_segments(jpeg(stored[..., k : k + 1])) for k in range(4)]
    tables = [(m, p) for m, p in parts[0][0] if m in (0xDB, 0xC4)]
    assert all([(m, p) for m, p in part[0] if m in (0xDB, 0xC4)] == tables for part in parts)

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    frame = struct.pack(">BHHB", 8, height, width, 4) + b"".join(
        bytes([k + 1, 0x11, 0]) for k in range(4)
    )
    out = b"\xff\xd8" + segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))
    out += b"".join(segment(m, p) for m, p in tables) + segment(0xC0, frame)
    for k, (_, header, scan) in enumerate(parts):
        out += segment(0xDA, bytes([1, k + 1]) + header[2:]) + scan
    return out + b"\xff\xd9"


def bad_images() -> dict[str, bytes]:
    """One file per kind of difficult image, by the issue kind a reader should report."""
    rgba = pixels(5, channels=4)
    rgba[..., 3] = 0  # fully transparent: must come out white
    return {
        "corrupt_truncated": jpeg(pixels(1))[:200],
        "corrupt_garbage": b"this is not an image at all",
        "grayscale_image": png(pixels(2, channels=1)),
        "alpha_image": png(rgba),
        "sixteen_bit_image": png(pixels(3).astype(np.uint16) * 257),
        "cmyk_image": cmyk_jpeg(pixels(4, channels=4)),
    }


class FakeEncoder:
    """A stand-in for `TextEncoder`: a caption's vector is seeded by its hash (instant, no model).

    `handle` is URL-like so that `encoder_identity` accepts it without a network; `calls` counts
    the batches embedded, so a test can tell whether the cache was used.
    """

    def __init__(self, name: str = "fake", output_dim: int = 6):
        self.handle = f"fake://{name}"
        self.output_dim = output_dim
        self.calls = 0

    def vector(self, caption: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(caption.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.output_dim).astype(np.float32)

    def __call__(self, captions: tf.Tensor) -> tf.Tensor:
        self.calls += 1
        return tf.constant(np.stack([self.vector(c.decode()) for c in captions.numpy()]))


def make_oxford(root: pathlib.Path, bad: bool = False) -> dict:
    """Reed's Oxford-102 layout: classes 1 and 2 train, class 3 test; two images per class.

    With `bad`: a truncated JPEG, a caption file for a missing image, an empty caption file,
    invalid UTF-8, an image in two classes (duplicate id), an image with no caption file, and a
    train class with no folder.
    """
    train = {
        "class_00001": ["image_00001", "image_00002"],
        "class_00002": ["image_00003", "image_00004"],
    }
    test = {"class_00003": ["image_00005", "image_00006"]}
    number = 0
    for name, images in {**train, **test}.items():
        for image in images:
            number += 1
            write(root / "jpg" / f"{image}.jpg", jpeg(pixels(number)))
            lines = [f"flower {image} caption {k}" for k in range(10)]
            write(root / "text_c10" / name / f"{image}.txt", "\n".join(lines) + "\n")
    write(root / "trainvalclasses.txt", "class_00001\nclass_00002\n")
    write(root / "testclasses.txt", "class_00003\n")
    write(root / "allclasses.txt", "class_00001\nclass_00002\nclass_00003\n")
    expected = {"train_ids": [i for images in train.values() for i in images], "bad": {}}
    if bad:
        write(root / "jpg" / "image_00007.jpg", jpeg(pixels(7))[:150])
        write(root / "text_c10" / "class_00001" / "image_00007.txt", "a truncated flower\n")
        write(root / "text_c10" / "class_00001" / "image_00008.txt", "no image for me\n")
        write(root / "jpg" / "image_00009.jpg", jpeg(pixels(9)))
        write(root / "text_c10" / "class_00002" / "image_00009.txt", "  \n\n")
        write(root / "jpg" / "image_00010.jpg", jpeg(pixels(10)))
        write(root / "text_c10" / "class_00002" / "image_00010.txt", b"caf\xe9 petals\nok\n")
        write(root / "text_c10" / "class_00002" / "image_00001.txt", "also in class 2\n")
        write(root / "jpg" / "image_00011.jpg", jpeg(pixels(11)))
        write(root / "trainvalclasses.txt", "class_00001\nclass_00002\nclass_00099\n")
        expected["train_ids"] = sorted(expected["train_ids"] + ["image_00010"])
        expected["bad"] = {
            "corrupt_image": 1,
            "missing_image": 1,
            "empty_captions": 1,
            "invalid_utf8": 1,
            "duplicate_id": 1,
            "missing_captions": 1,
            "missing_class": 1,
        }
    return expected


def make_cub(root: pathlib.Path) -> dict:
    """Reed's CUB layout: two train classes, one test class, boxes for all but one image."""
    classes = {
        "001.Black_footed_Albatross": [
            "Black_Footed_Albatross_0001_1",
            "Black_Footed_Albatross_0002_2",
        ],
        "002.Laysan_Albatross": ["Laysan_Albatross_0001_3"],
        "003.Sooty_Albatross": ["Sooty_Albatross_0001_4"],
    }
    image_lines, box_lines, number = [], [], 0
    for name, stems in classes.items():
        for stem in stems:
            number += 1
            write(root / "CUB_200_2011" / "images" / name / f"{stem}.jpg", jpeg(pixels(number)))
            write(root / "text_c10" / name / f"{stem}.txt", f"a bird {stem}\nit is a bird\n")
            image_lines.append(f"{number} {name}/{stem}.jpg")
            if number != 3:
                box_lines.append(f"{number} 2.0 3.0 6.0 4.0")
    write(root / "CUB_200_2011" / "images.txt", "\n".join(image_lines) + "\n")
    write(root / "CUB_200_2011" / "bounding_boxes.txt", "\n".join(box_lines) + "\n")
    write(root / "trainvalclasses.txt", "001.Black_footed_Albatross\n002.Laysan_Albatross\n")
    write(root / "testclasses.txt", "003.Sooty_Albatross\n")
    write(root / "allclasses.txt", "\n".join(classes) + "\n")
    train = [f"{n}/{s}" for n, stems in list(classes.items())[:2] for s in stems]
    return {"train_ids": sorted(train), "box": (2.0, 3.0, 6.0, 4.0), "no_box": train[2]}


def make_coco(root: pathlib.Path, split: str = "train2017", bad: bool = False) -> dict:
    """COCO's layout with three good images (3, 2 and 1 captions; the third a grayscale PNG)
    and, with `bad`, every problem COCO annotations can have."""
    images, annotations = [], []

    def add(image_id: int, file_name: str, captions: list[str], data: bytes | None) -> None:
        images.append({"id": image_id, "file_name": file_name, "height": SIZE, "width": 16})
        for caption in captions:
            annotations.append({"image_id": image_id, "id": len(annotations), "caption": caption})
        if data is not None:
            write(root / split / file_name, data)

    add(
        1,
        "000000000001.jpg",
        ["A dog on a sofa. ", "a brown dog", "dog\nsleeping"],
        jpeg(pixels(1)),
    )
    add(2, "000000000002.jpg", ["a red bus", "bus in the street"], jpeg(pixels(2)))
    add(3, "000000000003.png", ["a gray cat"], png(pixels(3, channels=1)))
    expected = {"ids": ["000000000001", "000000000002", "000000000003"], "counts": [3, 2, 1]}
    if bad:
        add(4, "000000000004.jpg", ["missing file"], None)
        add(5, "000000000005.jpg", [], jpeg(pixels(5)))
        add(6, "000000000006.jpg", ["", "  "], jpeg(pixels(6)))
        add(7, "000000000007.jpg", ["garbage"], b"not a jpeg")
        images.append({"id": 2, "file_name": "000000000002_copy.jpg"})
        annotations.append({"image_id": 99, "id": 1000, "caption": "orphan"})
        annotations[0]["caption"] += " INVALID_BYTE"
        expected["bad"] = {
            "missing_image": 2,  # image 4's file and image 99
            "missing_captions": 1,
            "empty_captions": 1,
            "empty_caption": 2,
            "duplicate_id": 1,
            "invalid_utf8": 1,
            "corrupt_image": 1,
            "grayscale_image": 1,
        }
    content = json.dumps({"images": images, "annotations": annotations}).encode()
    # A Latin-1 byte where UTF-8 is expected, as in files produced by older tools.
    write(
        root / "annotations" / f"captions_{split}.json", content.replace(b"INVALID_BYTE", b"\xe9")
    )
    return expected
