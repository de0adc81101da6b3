"""Prepared datasets: round trip, report, cache reuse and invalidation, the streaming paths."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from t2i_keras.data import images, prepared, shards, streaming
from t2i_keras.data.pipeline import training_dataset
from tests.data_fixtures import (
    FakeEncoder,
    bad_images,
    jpeg,
    make_coco,
    make_cub,
    make_oxford,
    pixels,
    png,
    write,
)


def prepare(kind, data_dir, encoder, cache_root, **kwargs):
    kwargs.setdefault("image_size", 16)
    return prepared.prepare_dataset(
        kind, data_dir, "train", encoder=encoder, cache_root=cache_root, progress=False, **kwargs
    )


@pytest.fixture
def oxford(tmp_path):
    """A prepared Oxford layout with every kind of bad data, in shards of two records."""
    expected = make_oxford(tmp_path / "data", bad=True)
    encoder = FakeEncoder()
    result = prepare(
        "oxford102", tmp_path / "data", encoder, tmp_path / "cache", examples_per_shard=2
    )
    return result, expected, encoder


def test_round_trip_matches_the_source(oxford):
    result, expected, encoder = oxford
    data = shards.load_prepared(result)
    source = prepared.read_source("oxford102", result.meta["data_dir"])
    good = [e for e in source.examples if e.id in expected["train_ids"]]
    assert data["ids"].tolist() == expected["train_ids"] == [e.id for e in good]
    assert len(result.shard_paths) == 3  # 5 records, 2 per shard
    assert data["images"].shape == (5, 16, 16, 3) and data["images"].dtype == np.uint8
    assert data["embeddings"].shape == (5, 10, 6) and data["embeddings"].dtype == np.float32
    for i, example in enumerate(good):
        image, _ = images.load_image(example.image_path, 16)
        np.testing.assert_array_equal(data["images"][i], image)
        count = len(example.captions)
        assert data["caption_counts"][i] == count
        assert data["captions"][i].tolist() == example.captions + [""] * (10 - count)
        np.testing.assert_array_equal(
            data["embeddings"][i, :count], np.stack([encoder.vector(c) for c in example.captions])
        )
        np.testing.assert_array_equal(data["embeddings"][i, count:], 0)
        assert data["class_names"][data["class_ids"][i]] == example.group
    assert data["class_names"].tolist() == ["class_00001", "class_00002"]


def test_report_lists_every_problem(oxford):
    result, expected, _ = oxford
    report = json.loads(result.report_path.read_text())
    assert report["counts"] == expected["bad"]
    assert report["num_examples"] == 5 and report["image_size"] == 16
    assert {i["kind"] for i in report["warnings"]} == {"invalid_utf8"}
    corrupt = [i for i in report["errors"] if i["kind"] == "corrupt_image"]
    assert corrupt[0]["path"].endswith("image_00007.jpg")
    assert "truncated JPEG" in corrupt[0]["message"]


def test_every_difficult_image_is_converted_or_reported(tmp_path):
    for kind, data in bad_images().items():
        suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg"
        write(tmp_path / "data" / f"{kind}{suffix}", data)
        write(tmp_path / "data" / f"{kind}.txt", f"a caption of {kind}")
    write(tmp_path / "data" / "plain.jpg", jpeg(pixels(0)))
    write(tmp_path / "data" / "plain.txt", "a plain image")
    result = prepare("folder", tmp_path / "data", FakeEncoder(), tmp_path / "cache")
    report = json.loads(result.report_path.read_text())
    assert report["counts"] == {
        "alpha_image": 1,
        "cmyk_image": 1,
        "corrupt_image": 2,
        "grayscale_image": 1,
        "sixteen_bit_image": 1,
    }
    for issue in report["errors"] + report["warnings"]:
        # Each file is named after what is wrong with it.
        assert pathlib.Path(issue["path"]).stem.startswith(issue["kind"].removesuffix("_image"))
    data = shards.load_prepared(result)
    assert sorted(data["ids"]) == [
        "alpha_image",
        "cmyk_image",
        "grayscale_image",
        "plain",
        "sixteen_bit_image",
    ]
    alpha = data["images"][data["ids"].tolist().index("alpha_image")]
    np.testing.assert_array_equal(alpha, 255)  # fully transparent: white


def test_second_prepare_reuses_and_a_changed_file_rebuilds(oxford, tmp_path):
    first, _, encoder = oxford
    assert not first.reused
    calls = encoder.calls
    again = prepare("oxford102", tmp_path / "data", encoder, tmp_path / "cache")
    assert again.reused and again.path == first.path and encoder.calls == calls
    # A handle is enough to find the cache: no encoder is built when nothing changed.
    assert prepare("oxford102", tmp_path / "data", encoder.handle, tmp_path / "cache").reused

    write(tmp_path / "data/text_c10/class_00001/image_00002.txt", "a brand new caption\n")
    changed = prepare("oxford102", tmp_path / "data", encoder, tmp_path / "cache")
    assert not changed.reused and changed.path != first.path
    data = shards.load_prepared(changed.path)
    assert data["captions"][data["ids"].tolist().index("image_00002")][0] == "a brand new caption"

    other_encoder = prepare(
        "oxford102", tmp_path / "data", FakeEncoder("other"), tmp_path / "cache"
    )
    assert not other_encoder.reused and other_encoder.path not in (first.path, changed.path)
    assert (
        prepare("oxford102", tmp_path / "data", encoder, tmp_path / "cache", image_size=8).path
        != changed.path
    )


def test_streaming_batches_sample_only_real_captions(tmp_path):
    expected = make_coco(tmp_path / "data")  # 3, 2 and 1 captions: padded to 3
    encoder = FakeEncoder()
    result = prepare("coco", tmp_path / "data", encoder, tmp_path / "cache")
    data = shards.load_prepared(result)
    assert data["caption_counts"].tolist() == expected["counts"]
    valid = {  # COCO: one group per image, so the class id tells the image
        int(c): {tuple(v) for v in data["embeddings"][i, : data["caption_counts"][i]]}
        for i, c in enumerate(data["class_ids"])
    }
    streamed = streaming.prepared_training_dataset(result, batch_size=3, seed=1)
    in_memory = training_dataset(
        data["images"],
        data["embeddings"],
        data["class_ids"],
        3,
        seed=1,
        caption_counts=data["caption_counts"],
    )
    assert streamed.element_spec == in_memory.element_spec
    assert streamed.element_spec["image"].shape.as_list() == [3, 16, 16, 3]
    for ds in (streamed, in_memory):
        used = set()
        for batch in ds.take(12):
            assert -1 <= batch["image"].numpy().min() and batch["image"].numpy().max() <= 1
            for embedding, class_id in zip(batch["embedding"].numpy(), batch["class_id"].numpy()):
                assert tuple(embedding) in valid[int(class_id)]
                used.add(tuple(embedding))
        assert used == set().union(*valid.values())  # every real caption gets sampled


def test_raw_stream_decodes_the_same_pixels_as_the_cache(tmp_path):
    make_coco(tmp_path / "data", bad=True)
    source = prepared.read_source("coco", tmp_path / "data")
    data = shards.load_prepared(
        prepare("coco", tmp_path / "data", FakeEncoder(), tmp_path / "cache")
    )
    ds = streaming.raw_image_dataset(source, 16, batch_size=2, seed=0)
    assert ds.element_spec["image"].shape.as_list() == [2, 16, 16, 3]
    for batch in ds.take(4):  # the garbage image is skipped
        for image, index in zip(batch["image"].numpy(), batch["index"].numpy()):
            example_id = source.examples[index].id
            cached = data["images"][data["ids"].tolist().index(example_id)] / 127.5 - 1
            assert np.allclose(image, cached, atol=1e-6) or np.allclose(
                image, cached[:, ::-1], atol=1e-6
            )


def test_cub_bbox_policy_crops_each_bird_to_its_box(tmp_path):
    expected = make_cub(tmp_path / "data")
    result = prepare(
        "cub", tmp_path / "data", FakeEncoder(), tmp_path / "cache", resize_policy="bbox"
    )
    data = shards.load_prepared(result)
    source = prepared.read_source("cub", tmp_path / "data", resize_policy="bbox")
    for example, image in zip(source.examples, data["images"]):
        policy = "center_crop" if example.id == expected["no_box"] else "bbox"
        np.testing.assert_array_equal(
            image, images.load_image(example.image_path, 16, policy, expected["box"])[0]
        )
    assert json.loads(result.report_path.read_text())["counts"] == {"missing_box": 1}


def test_nothing_decodable_fails_with_a_report(tmp_path):
    write(tmp_path / "data/a.jpg", b"not an image")
    write(tmp_path / "data/a.txt", "a caption")
    write(tmp_path / "data/b.png", png(pixels(0))[:40])
    write(tmp_path / "data/b.txt", "another caption")
    with pytest.raises(ValueError, match="No image of .* could be decoded") as error:
        prepare("folder", tmp_path / "data", FakeEncoder(), tmp_path / "cache")
    failed = list((tmp_path / "cache").glob("*.failed-report.json"))
    assert len(failed) == 1 and str(failed[0]) in str(error.value)
    assert json.loads(failed[0].read_text())["counts"] == {"corrupt_image": 2}
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # nothing half-written


def test_invalid_requests(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset kind 'imagenet'"):
        prepared.read_source("imagenet", tmp_path)
    with pytest.raises(ValueError, match="only 'cub' has"):
        prepared.read_source("coco", tmp_path, resize_policy="bbox")
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        shards.open_prepared(tmp_path)
    with pytest.raises(ValueError, match="caption_counts must be between 1 and 2"):
        training_dataset(
            np.zeros((2, 4, 4, 3), np.uint8),
            np.zeros((2, 2, 3)),
            [0, 1],
            2,
            caption_counts=np.array([1, 3]),
        )


PREPARE_AND_DIE = """
import os, signal, sys
from t2i_keras.data import prepared, shards
from t2i_keras.text import embeddings
from tests.data_fixtures import FakeEncoder

data_dir, cache_root, moment = sys.argv[1:4]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if moment == "decoding":
    load_images = prepared.images.load_images

    def dying_load(*args, **kwargs):
        for i, result in enumerate(load_images(*args, **kwargs)):
            if i == 60:
                die()
            yield result

    prepared.images.load_images = dying_load
elif moment == "embedding":
    add = embeddings.EmbeddingCache.add

    def dying_add(self, *args, **kwargs):
        add(self, *args, **kwargs)
        die()  # one batch of vectors is in the cache, the rest is not

    embeddings.EmbeddingCache.add = dying_add
else:  # every shard is written, meta.json is not, the folder is not renamed into place
    write_shards = shards.write_shards

    def dying_write(*args, **kwargs):
        write_shards(*args, **kwargs)
        die()

    shards.write_shards = dying_write
prepared.prepare_dataset(
    "folder", data_dir, "train", 16, FakeEncoder(), cache_root=cache_root,
    examples_per_shard=50, progress=False,
)
"""


def make_photo_folder(root: pathlib.Path, count: int, tag: str) -> pathlib.Path:
    """`count` small PNGs with three captions each (unique per `tag`, so no test's embeddings
    are in the cache already)."""
    for i in range(count):
        write(root / f"group{i % 3}" / f"photo{i:03d}.png", png(pixels(i)))
        write(
            root / f"group{i % 3}" / f"photo{i:03d}.txt",
            "".join(f"{tag} photo {i} caption {k}\n" for k in range(3)),
        )
    return root


@pytest.mark.parametrize("moment", ["decoding", "embedding", "writing"])
def test_an_interrupted_preparation_is_never_taken_for_a_complete_one(moment, tmp_path):
    data_dir = make_photo_folder(tmp_path / "photos", 150, moment)  # 450 captions: 2 batches
    cache = tmp_path / "cache"
    repo = pathlib.Path(__file__).resolve().parents[2]
    killed = subprocess.run(
        [sys.executable, "-c", PREPARE_AND_DIE, str(data_dir), str(cache), moment],
        capture_output=True,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not list(cache.glob("*/meta.json")), "a killed preparation looks complete"
    encoder = FakeEncoder()
    again = prepare("folder", data_dir, encoder, cache, examples_per_shard=50)
    assert not again.reused and again.num_examples == 150
    if moment == "embedding":
        assert encoder.calls == 1, "the batch embedded before the kill was embedded again"
    clean = prepare("folder", data_dir, FakeEncoder(), tmp_path / "clean", examples_per_shard=50)
    ours, reference = shards.load_prepared(again), shards.load_prepared(clean)
    for key in ("images", "embeddings", "captions", "ids"):
        np.testing.assert_array_equal(ours[key], reference[key])
