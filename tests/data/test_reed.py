"""Reed et al.'s Oxford-102 and CUB layouts: parsing, bad data, download instructions, TFDS."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from t2i_keras.data import images, real_tfds, reed
from tests.data_fixtures import make_cub, make_oxford, write


class TestOxford102:
    def test_splits_captions_and_groups(self, tmp_path):
        expected = make_oxford(tmp_path)
        train = reed.read_oxford102(tmp_path, "train")
        assert [e.id for e in train.examples] == expected["train_ids"]
        first = train.examples[0]
        assert first.group == "class_00001" and first.image_path == tmp_path / "jpg/image_00001.jpg"
        assert first.captions == [f"flower image_00001 caption {k}" for k in range(10)]
        assert [e.id for e in reed.read_oxford102(tmp_path, "test").examples] == [
            "image_00005",
            "image_00006",
        ]
        assert len(reed.read_oxford102(tmp_path, "all").examples) == 6
        assert train.report.issues == []

    def test_bad_data_is_counted_and_the_rest_kept(self, tmp_path):
        expected = make_oxford(tmp_path, bad=True)
        source = reed.read_oxford102(tmp_path, "train")
        # The truncated JPEG is only found when images are decoded (see test_prepared).
        assert source.report.counts() == {
            k: v for k, v in expected["bad"].items() if k != "corrupt_image"
        }
        ids = [e.id for e in source.examples]
        assert ids == sorted(expected["train_ids"] + ["image_00007"])
        by_id = {e.id: e for e in source.examples}
        assert by_id["image_00010"].captions == ["caf\ufffd petals", "ok"]
        assert by_id["image_00001"].group == "class_00001"  # its class_00002 copy is the duplicate
        messages = "\n".join(i["message"] for i in source.report.issues)
        assert "image_00008.jpg, which does not exist" in messages
        assert "class_00099" in messages and "image_00011" in messages

    def test_missing_files_say_what_to_download_and_where(self, tmp_path):
        make_oxford(tmp_path)
        shutil.rmtree(tmp_path / "text_c10")
        with pytest.raises(FileNotFoundError) as error:
            reed.read_oxford102(tmp_path)
        message = str(error.value)
        assert str(tmp_path / "text_c10") in message
        assert reed.OXFORD102_CAPTIONS_URL in message and reed.OXFORD102_IMAGES_URL in message
        with pytest.raises(FileNotFoundError, match="valclasses.txt"):
            reed.read_oxford102(tmp_path, "val")

    def test_nothing_usable_is_a_clear_error(self, tmp_path):
        make_oxford(tmp_path)
        for caption_file in (tmp_path / "text_c10").rglob("*.txt"):
            caption_file.write_text("\n")
        with pytest.raises(ValueError, match="No usable example.*\n.*empty_captions"):
            reed.read_oxford102(tmp_path)


class TestCub:
    def test_classes_captions_and_boxes(self, tmp_path):
        expected = make_cub(tmp_path)
        source = reed.read_cub(tmp_path, "train", bounding_boxes=True)
        assert [e.id for e in source.examples] == expected["train_ids"]
        by_id = {e.id: e for e in source.examples}
        assert by_id[expected["no_box"]].box is None
        assert {e.box for e in source.examples if e.id != expected["no_box"]} == {expected["box"]}
        assert source.examples[0].group == "001.Black_footed_Albatross"
        assert source.examples[0].captions == [
            "a bird Black_Footed_Albatross_0001_1",
            "it is a bird",
        ]
        assert source.report.counts() == {"missing_box": 1}
        assert [e.id for e in reed.read_cub(tmp_path, "test").examples] == [
            "003.Sooty_Albatross/Sooty_Albatross_0001_4"
        ]

    def test_boxes_are_only_needed_for_the_bbox_policy(self, tmp_path):
        make_cub(tmp_path)
        (tmp_path / "CUB_200_2011" / "bounding_boxes.txt").unlink()
        assert all(e.box is None for e in reed.read_cub(tmp_path).examples)
        with pytest.raises(FileNotFoundError, match="bounding_boxes.txt") as error:
            reed.read_cub(tmp_path, bounding_boxes=True)
        assert reed.CUB_IMAGES_URL in str(error.value)

    def test_images_without_captions_and_captions_without_images(self, tmp_path):
        make_cub(tmp_path)
        bird = tmp_path / "CUB_200_2011/images/002.Laysan_Albatross/Laysan_Albatross_0001_3.jpg"
        write(bird.with_name("Laysan_Albatross_0009_9.jpg"), bird.read_bytes())
        bird.unlink()
        write(tmp_path / "CUB_200_2011/bounding_boxes.txt", "1 a b c d\n2 1 2 3\n")
        source = reed.read_cub(tmp_path, bounding_boxes=True)
        assert source.report.counts() == {
            "malformed_row": 2,
            "missing_box": 2,
            "missing_captions": 1,
            "missing_image": 1,
        }
        assert len(source.examples) == 2


def build(builder_class, config: str, manual_dir, data_dir):
    builder = builder_class(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def test_tfds_oxford_builder_skips_bad_images(tmp_path):
    expected = make_oxford(tmp_path / "manual", bad=True)
    builder = build(real_tfds.OxfordFlowersReed, "32_center_crop", tmp_path / "manual", tmp_path)
    assert builder.info.splits["train"].num_examples == len(expected["train_ids"])
    assert builder.info.splits["test"].num_examples == 2
    examples = {e["id"].decode(): e for e in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert sorted(examples) == expected["train_ids"]
    image, _ = images.load_image(tmp_path / "manual/jpg/image_00003.jpg", 32)
    np.testing.assert_array_equal(examples["image_00003"]["image"], image)
    assert len(examples["image_00003"]["captions"]) == 10
    assert examples["image_00003"]["group"] == b"class_00002"


def test_tfds_cub_builder_crops_to_boxes(tmp_path):
    expected = make_cub(tmp_path / "manual")
    builder = build(real_tfds.CubBirdsReed, "32_bbox", tmp_path / "manual", tmp_path)
    examples = {e["id"].decode(): e for e in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert sorted(examples) == expected["train_ids"]
    first = expected["train_ids"][0]
    path = tmp_path / "manual/CUB_200_2011/images" / f"{first}.jpg"
    image, _ = images.load_image(path, 32, "bbox", expected["box"])
    np.testing.assert_array_equal(examples[first]["image"], image)
    assert "cvpr2016_cub.tar.gz" in real_tfds.CubBirdsReed.MANUAL_DOWNLOAD_INSTRUCTIONS
