"""COCO captions (Lin et al. 2014; Chen et al. 2015) in COCO's own layout.

Expected under `data_dir`, as the official archives unpack:

    annotations/captions_<split>.json     images (id, file_name), annotations (image_id, caption)
    <split>/<file_name>                   e.g. train2017/000000493652.jpg

COCO has no classes that captions respect, so each image is its own group: any other image is a
wrong image for GAN-CLS. Ids are the file names without extension (COCO's zero-padded image id).
"""

from __future__ import annotations

import collections
import json
import os
import pathlib

from t2i_keras.data.records import (
    CaptionedSource,
    DataReport,
    SourceExample,
    clean_caption,
    finish_source,
)

COCO_ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval{year}.zip"
COCO_IMAGES_URL = "http://images.cocodataset.org/zips/{split}.zip"
# Short names for the current release; any other split name is used as is (e.g. "val2014").
SPLIT_ALIASES = {"train": "train2017", "val": "val2017", "validation": "val2017"}


def _captions(count: int) -> str:
    return f"{count} caption" + "s" * (count != 1)


def coco_instructions(split: str = "train2017") -> str:
    """Where COCO's files come from and where they go (COCO cannot be downloaded here)."""
    year = split[-4:] if split[-4:].isdigit() else "2017"
    return (
        "COCO captions cannot be downloaded automatically. Get (see https://cocodataset.org):\n"
        f"  1. the captions, {COCO_ANNOTATIONS_URL.format(year=year)}\n"
        f"     Extract it in the data folder: it unpacks into annotations/captions_{split}.json.\n"
        f"  2. the images, {COCO_IMAGES_URL.format(split=split)}\n"
        f"     Extract it in the data folder: it unpacks into {split}/<12-digit id>.jpg.\n"
    )


def read_coco(
    data_dir: str | os.PathLike, split: str = "train", max_captions: int | None = None
) -> CaptionedSource:
    """COCO images with their (usually five) human captions.

    Args:
        data_dir: the folder holding `annotations/` and the split's image folder.
        split: "train" / "val" (the 2017 release) or a folder name such as "val2014".
        max_captions: keep at most this many captions per image (the rest are counted).

    Raises:
        FileNotFoundError: files are missing; the message says which archives to get.
        ValueError: an annotation file that is not COCO's format, or nothing usable.
    """
    data_dir = pathlib.Path(data_dir)
    name = SPLIT_ALIASES.get(split, split)
    annotation_file = data_dir / "annotations" / f"captions_{name}.json"
    image_folder = data_dir / name
    missing = [p for p in (annotation_file, image_folder) if not p.exists()]
    if missing:
        listed = "\n".join(f"  {p}" for p in missing)
        raise FileNotFoundError(
            f"COCO in {data_dir} is incomplete; missing:\n{listed}\n{coco_instructions(name)}"
        )
    try:
        # surrogateescape keeps invalid bytes visible to `clean_caption`, which counts them.
        content = json.loads(annotation_file.read_bytes().decode("utf-8", "surrogateescape"))
        listed_images, annotations = content["images"], content["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{annotation_file} is not a COCO captions file (a JSON object with 'images' and "
            f"'annotations' lists): {error}"
        ) from error

    report = DataReport()
    files: dict[int, pathlib.Path] = {}
    for entry in listed_images:
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            report.add("malformed_row", annotation_file, f"{annotation_file}: image {entry!r}")
        elif entry["id"] in files:
            report.add(
                "duplicate_id",
                annotation_file,
                f"{annotation_file}: image id {entry['id']} is listed twice "
                f"({files[entry['id']].name}, {entry['file_name']}); the second was left out",
            )
        else:
            files[entry["id"]] = image_folder / entry["file_name"]

    captions: dict[int, list[str]] = collections.defaultdict(list)
    orphans: collections.Counter = collections.Counter()
    blank: collections.Counter = collections.Counter()
    for entry in annotations:
        if not isinstance(entry, dict) or not isinstance(entry.get("caption"), str):
            report.add("malformed_row", annotation_file, f"{annotation_file}: caption {entry!r}")
        elif entry.get("image_id") not in files:
            orphans[entry.get("image_id")] += 1
        else:
            where = f" (caption {entry.get('id')} of image {entry['image_id']})"
            text = clean_caption(entry["caption"], annotation_file, report, where)
            if text:
                captions[entry["image_id"]].append(text)
            else:
                blank[entry["image_id"]] += 1
                report.add(
                    "empty_caption",
                    annotation_file,
                    f"{annotation_file}: blank caption {entry.get('id')} of image "
                    f"{entry['image_id']}",
                )
    for image_id, count in sorted(orphans.items(), key=lambda item: str(item[0])):
        report.add(
            "missing_image",
            annotation_file,
            f"{annotation_file}: {_captions(count)} for image id {image_id}, which 'images' "
            "does not list",
        )

    examples = []
    for image_id, path in sorted(files.items(), key=lambda item: item[1].name):
        if not captions[image_id] and blank[image_id]:
            report.add(
                "empty_captions", path, f"{path}: every caption of image {image_id} is blank"
            )
        elif not captions[image_id]:
            report.add("missing_captions", path, f"{path}: image {image_id} has no caption")
        elif not path.is_file():
            report.add(
                "missing_image",
                path,
                f"{path}: {_captions(len(captions[image_id]))} for image {image_id}, whose file "
                "does not exist",
            )
        else:
            example_id = path.relative_to(image_folder).with_suffix("").as_posix()
            examples.append(SourceExample(example_id, path, captions[image_id], example_id))
    return finish_source("coco", data_dir, split, examples, report, [annotation_file], max_captions)
