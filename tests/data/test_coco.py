"""COCO captions: parsing, bad annotations, instructions, TFDS, and real COCO photographs."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from t2i_keras.data import coco, images, real_tfds
from t2i_keras.data.pipeline import training_dataset
from t2i_keras.data.prepared import prepare_dataset
from t2i_keras.data.shards import load_prepared
from tests.data_fixtures import FakeEncoder, make_coco, write


def test_images_captions_and_one_group_per_image(tmp_path):
    expected = make_coco(tmp_path)
    source = coco.read_coco(tmp_path, "train")
    assert [e.id for e in source.examples] == expected["ids"]
    assert [len(e.captions) for e in source.examples] == expected["counts"]
    assert [e.group for e in source.examples] == expected["ids"]
    assert source.examples[0].captions == ["A dog on a sofa.", "a brown dog", "dog sleeping"]
    assert source.report.issues == []


def test_bad_annotations_are_counted_and_the_rest_kept(tmp_path):
    expected = make_coco(tmp_path, bad=True)
    prepared = prepare_dataset(
        "coco", tmp_path, "train", 8, FakeEncoder(), cache_root=tmp_path / "cache", progress=False
    )
    report = json.loads(prepared.report_path.read_text())
    assert report["counts"] == expected["bad"]
    assert prepared.num_examples == 3
    messages = [i["message"] for i in report["errors"]]
    assert any("image id 99, which 'images' does not list" in m for m in messages)
    assert any("image id 2 is listed twice" in m for m in messages)
    assert any("000000000007.jpg: not an image" in m for m in messages)
    assert load_prepared(prepared)["captions"][0][0] == "A dog on a sofa. \ufffd"


def test_missing_files_say_what_to_download_and_where(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        coco.read_coco(tmp_path, "val")
    message = str(error.value)
    assert str(tmp_path / "annotations" / "captions_val2017.json") in message
    assert "http://images.cocodataset.org/zips/val2017.zip" in message
    assert "annotations_trainval2017.zip" in message
    with pytest.raises(FileNotFoundError, match="annotations_trainval2014.zip"):
        coco.read_coco(tmp_path, "val2014")


def test_a_file_that_is_not_coco_json(tmp_path):
    make_coco(tmp_path)
    write(tmp_path / "annotations" / "captions_train2017.json", '{"images": []}')
    with pytest.raises(ValueError, match="is not a COCO captions file"):
        coco.read_coco(tmp_path)
    write(tmp_path / "annotations" / "captions_train2017.json", '{"images": [], "annotations": []}')
    with pytest.raises(ValueError, match="No usable example"):
        coco.read_coco(tmp_path)


def test_tfds_coco_builder(tmp_path):
    expected = make_coco(tmp_path / "manual")
    builder = real_tfds.CocoCaptionsManual(config="32_pad", data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual"))
    )
    assert list(builder.info.splits) == ["train"]  # no val2017 annotations in the manual folder
    examples = {e["id"].decode(): e for e in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert sorted(examples) == expected["ids"]
    assert [len(examples[i]["captions"]) for i in expected["ids"]] == expected["counts"]
    gray, _ = images.load_image(tmp_path / "manual/train2017/000000000003.png", 32, "pad")
    np.testing.assert_array_equal(examples["000000000003"]["image"], gray)


@pytest.mark.slow
def test_real_coco_photographs(coco_mini, text_encoder, tmp_path):
    """80 COCO 2017 photographs with 400 human captions, prepared with the real encoder."""
    prepared = prepare_dataset("coco", coco_mini, "train", 32, text_encoder, cache_root=tmp_path)
    report = json.loads(prepared.report_path.read_text())
    assert report["errors"] == []
    assert (prepared.num_examples, prepared.meta["num_captions"]) == (80, 400)
    data = load_prepared(prepared)
    assert data["images"].shape == (80, 32, 32, 3) and data["images"].std() > 20
    assert data["embeddings"].shape == (80, 5, 512) and data["caption_counts"].sum() == 400
    assert len(set(data["class_ids"].tolist())) == 80  # every image is its own group
    direct = text_encoder(tf.constant([data["captions"][7, 2]])).numpy()[0]
    np.testing.assert_allclose(data["embeddings"][7, 2], direct, atol=1e-5)
    batch = next(
        iter(
            training_dataset(
                data["images"],
                data["embeddings"],
                data["class_ids"],
                16,
                caption_counts=data["caption_counts"],
            )
        )
    )
    assert batch["image"].shape == (16, 32, 32, 3) and batch["embedding"].shape == (16, 512)
