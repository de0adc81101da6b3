"""Robust decoding (every awkward format to RGB, clear errors) and the resize policies."""

import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.data import images
from tests.data_fixtures import bad_images, cmyk_jpeg, jpeg, pixels, png, write


def decode(data: bytes) -> np.ndarray:
    return images.decode_image(tf.constant(data))["image"].numpy()


class TestDecode:
    def test_grayscale_is_replicated_to_three_channels(self):
        gray = pixels(0, channels=1)
        np.testing.assert_array_equal(decode(png(gray)), np.repeat(gray, 3, axis=-1))
        assert decode(jpeg(gray)).shape == gray.shape[:2] + (3,)

    def test_alpha_is_composited_on_white(self):
        rgba = np.zeros((2, 3, 4), np.uint8)
        rgba[..., :3] = (200, 100, 0)
        rgba[..., 3] = [[255, 0, 51], [255, 255, 255]]
        out = decode(png(rgba))
        np.testing.assert_array_equal(out[0, 0], (200, 100, 0))
        np.testing.assert_array_equal(out[0, 1], (255, 255, 255))
        # 20% opaque: 0.2 * colour + 0.8 * white.
        np.testing.assert_array_equal(out[0, 2], np.round(0.2 * np.array([200, 100, 0]) + 204))

    def test_gray_alpha_png(self):
        gray_alpha = np.stack([np.full((2, 2), 10, np.uint8), np.zeros((2, 2), np.uint8)], -1)
        np.testing.assert_array_equal(decode(png(gray_alpha)), np.full((2, 2, 3), 255))

    def test_sixteen_bit_is_rounded_to_eight_bits(self):
        deep = np.array([[[0], [128], [65535], [25800]]], np.uint16)  # 25800 / 257 = 100.4
        expected = np.round(deep / 257).astype(np.uint8)
        np.testing.assert_array_equal(decode(png(deep)), np.repeat(expected, 3, axis=-1))
        colour = (pixels(1).astype(np.uint16) * 257) + 100
        np.testing.assert_array_equal(decode(png(colour)), np.round(colour / 257))

    def test_cmyk_jpeg_is_converted_to_rgb(self):
        stored = np.zeros((16, 16, 4), np.uint8)  # Adobe CMYK is stored inverted: 255 = no ink
        stored[..., 0], stored[..., 3] = 255, 255  # no cyan, full magenta and yellow, no black
        out = decode(cmyk_jpeg(stored))
        np.testing.assert_allclose(out.reshape(-1, 3), [[255, 0, 0]] * 256, atol=3)

    def test_conversions_are_named(self, tmp_path):
        for kind, data in bad_images().items():
            if kind.startswith("corrupt"):
                continue
            image, conversions = images.load_image(write(tmp_path / kind, data), 8)
            assert image.shape == (8, 8, 3) and image.dtype == np.uint8
            expected = {
                "grayscale_image": ["grayscale"],
                "alpha_image": ["alpha"],
                "sixteen_bit_image": ["sixteen_bit"],
                "cmyk_image": ["cmyk"],
            }[kind]
            assert conversions == expected, kind
        _, conversions = images.load_image(write(tmp_path / "plain.jpg", jpeg(pixels(0))), 8)
        assert conversions == []

    def test_bad_files_raise_a_clear_error(self, tmp_path):
        cases = {
            "truncated.jpg": (bad_images()["corrupt_truncated"], "truncated JPEG"),
            "garbage.jpg": (bad_images()["corrupt_garbage"], "not an image TensorFlow can decode"),
            "empty.png": (b"", "the file is empty"),
            "cut.png": (png(pixels(0))[:60], "truncated PNG"),
        }
        for name, (data, reason) in cases.items():
            path = write(tmp_path / name, data)
            with pytest.raises(images.ImageDecodeError, match=reason) as error:
                images.load_image(path, 8)
            assert str(path) in str(error.value)
        with pytest.raises(images.ImageDecodeError, match="cannot be read"):
            images.load_image(tmp_path / "absent.jpg", 8)


class TestResize:
    def wide_image(self) -> np.ndarray:
        """12 x 16: blue, with 2-column red bands left and right."""
        image = np.zeros((12, 16, 3), np.uint8)
        image[..., 2] = 255
        image[:, :2] = image[:, -2:] = (255, 0, 0)
        return image

    def test_center_crop_keeps_the_middle_square(self):
        out = images.resize_image(self.wide_image(), 24, "center_crop").numpy()
        assert out.shape == (24, 24, 3)
        np.testing.assert_array_equal(out, np.broadcast_to([0, 0, 255], out.shape))

    def test_pad_keeps_everything_on_black(self):
        out = images.resize_image(self.wide_image(), 24, "pad").numpy()
        # 12 x 16 scaled by 1.5 is 18 x 24: three black rows above and below.
        np.testing.assert_array_equal(out[:3], 0)
        np.testing.assert_array_equal(out[-3:], 0)
        np.testing.assert_array_equal(out[3:-3, 0], [[255, 0, 0]] * 18)
        np.testing.assert_array_equal(out[3:-3, 12], [[0, 0, 255]] * 18)

    def test_bbox_crops_the_enlarged_box(self):
        image = np.zeros((40, 40, 3), np.uint8)
        image[10:22, 20:32] = 255  # the object: a 12 x 12 white box at x=20, y=10
        out = images.resize_image(image, 18, "bbox", box=(20, 10, 12, 12)).numpy()
        # The crop is 18 x 18 around the box centre: the box is the middle 12 x 12, 3 px margins.
        np.testing.assert_array_equal(out[3:15, 3:15], 255)
        np.testing.assert_array_equal(out[:3], 0)
        np.testing.assert_array_equal(out[:, -3:], 0)

    def test_bbox_clips_at_the_border_and_falls_back_without_a_box(self):
        image = pixels(3, 30, 40)
        at_corner = images.resize_image(image, 8, "bbox", box=(0, 0, 4, 4)).numpy()
        assert at_corner.shape == (8, 8, 3)
        for box in (None, (0, 0, 0, 0)):
            np.testing.assert_array_equal(
                images.resize_image(image, 8, "bbox", box=box).numpy(),
                images.resize_image(image, 8, "center_crop").numpy(),
            )

    def test_unknown_policy(self):
        with pytest.raises(ValueError, match="Unknown resize policy 'stretch'"):
            images.resize_image(pixels(0), 8, "stretch")


def test_load_images_matches_load_image_and_reports_failures(tmp_path):
    paths = [write(tmp_path / f"{kind}.img", data) for kind, data in bad_images().items()]
    paths.append(write(tmp_path / "plain.jpg", jpeg(pixels(9))))
    results = {r.index: r for r in images.load_images(paths, 10, "pad")}
    assert sorted(results) == list(range(len(paths)))
    for index, path in enumerate(paths):
        if path.stem.startswith("corrupt"):
            assert results[index].image is None and str(path) in results[index].error
        else:
            image, conversions = images.load_image(path, 10, "pad")
            np.testing.assert_array_equal(results[index].image, image)
            assert results[index].conversions == conversions and results[index].error is None
