"""Oxford-102 flowers and CUB-200-2011 birds with Reed et al.'s captions, in their layout.

Reed, Akata, Lee & Schiele (CVPR 2016) collected ten captions per image for both datasets and
published them, with zero-shot class splits, as `cvpr2016_flowers.tar.gz` and
`cvpr2016_cub.tar.gz`; Reed et al. (ICML 2016, GAN-INT-CLS) train on the `trainval` classes.
Expected under `data_dir`:

    Oxford-102                                 CUB-200-2011
    jpg/image_00001.jpg                        CUB_200_2011/images/<class>/<name>.jpg
    text_c10/class_00001/image_00001.txt       text_c10/<class>/<name>.txt
    trainvalclasses.txt, testclasses.txt,      trainvalclasses.txt, testclasses.txt,
    allclasses.txt   (lines: class_00001)      allclasses.txt  (lines: 001.Black_footed_Albatross)
                                               CUB_200_2011/images.txt, bounding_boxes.txt
                                               (only for the "bbox" resize policy)

The class is the group wrong images are drawn from. Nothing is downloaded: missing files raise
`FileNotFoundError` naming the official archives and where to extract them.
"""

from __future__ import annotations

import os
import pathlib

from t2i_keras.data.records import (
    CaptionedSource,
    DataReport,
    SourceExample,
    finish_source,
    read_caption_file,
)

OXFORD102_IMAGES_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz"
OXFORD102_CAPTIONS_URL = "https://drive.google.com/open?id=0B0ywwgffWnLLcms2WWJQRFNSWXM"
CUB_IMAGES_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_CAPTIONS_URL = "https://drive.google.com/open?id=0B0ywwgffWnLLZW9uVHNjb2JmNlE"

OXFORD102_INSTRUCTIONS = f"""\
Oxford-102 flowers with Reed et al.'s captions cannot be downloaded automatically. Get:
  1. the images, 102flowers.tgz: {OXFORD102_IMAGES_URL}
     Extract it in the data folder: it unpacks into jpg/image_00001.jpg ...
  2. Reed et al.'s captions, cvpr2016_flowers.tar.gz: {OXFORD102_CAPTIONS_URL}
     (linked from https://github.com/reedscot/cvpr2016). Extract it and move its text_c10/
     folder and its *classes.txt files (trainvalclasses.txt, testclasses.txt, allclasses.txt)
     into the data folder, beside jpg/.
"""

CUB_INSTRUCTIONS = f"""\
CUB-200-2011 birds with Reed et al.'s captions cannot be downloaded automatically. Get:
  1. the images, CUB_200_2011.tgz: {CUB_IMAGES_URL}
     (https://www.vision.caltech.edu/datasets/cub_200_2011/). Extract it in the data folder: it
     unpacks into CUB_200_2011/images/..., CUB_200_2011/images.txt and bounding_boxes.txt.
  2. Reed et al.'s captions, cvpr2016_cub.tar.gz: {CUB_CAPTIONS_URL}
     (linked from https://github.com/reedscot/cvpr2016). Extract it and move its text_c10/
     folder and its *classes.txt files (trainvalclasses.txt, testclasses.txt, allclasses.txt)
     into the data folder, beside CUB_200_2011/.
"""


def split_file(data_dir: pathlib.Path, split: str) -> pathlib.Path:
    """The class list of a split: "train" is Reed's `trainvalclasses.txt` (GAN-INT-CLS trains on
    train+val classes); any other name `<split>classes.txt` (test, all, val, trainval)."""
    return data_dir / ("trainvalclasses.txt" if split == "train" else f"{split}classes.txt")


def _require(paths: list[pathlib.Path], data_dir: pathlib.Path, instructions: str) -> None:
    missing = [p for p in paths if not p.exists()]
    if missing:
        listed = "\n".join(f"  {p}" for p in missing)
        raise FileNotFoundError(
            f"The dataset in {data_dir} is incomplete; missing:\n{listed}\n{instructions}"
        )


def _split_classes(path: pathlib.Path) -> list[str]:
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not classes:
        raise ValueError(f"{path} lists no class; it should hold one class folder name per line")
    return classes


def read_oxford102(
    data_dir: str | os.PathLike, split: str = "train", max_captions: int | None = None
) -> CaptionedSource:
    """Oxford-102 flowers with Reed's ten captions per image (see the module docstring).

    Ids are image names (`image_00001`); Oxford's image names are unique across classes, so an
    image whose captions appear under two classes is reported as a duplicate.

    Raises:
        FileNotFoundError: files are missing; the message says which archives to get.
        ValueError: nothing usable.
    """
    data_dir = pathlib.Path(data_dir)
    images, texts = data_dir / "jpg", data_dir / "text_c10"
    classes_file = split_file(data_dir, split)
    _require([images, texts, classes_file], data_dir, OXFORD102_INSTRUCTIONS)
    report, examples, files = DataReport(), [], [classes_file]
    for name in _split_classes(classes_file):
        folder = texts / name
        if not folder.is_dir():
            report.add("missing_class", folder, f"class {name} of {classes_file.name}: no {folder}")
            continue
        for caption_file in sorted(folder.glob("*.txt")):
            files.append(caption_file)
            captions = read_caption_file(caption_file, report)
            image = images / f"{caption_file.stem}.jpg"
            if not image.is_file():
                report.add(
                    "missing_image",
                    caption_file,
                    f"{caption_file}: captions for {image}, which does not exist",
                )
                continue
            examples.append(SourceExample(caption_file.stem, image, captions, name))
    captioned = {p.stem for p in texts.glob("*/*.txt")}
    for image in sorted(images.glob("*.jpg")):
        if image.stem not in captioned:
            report.add(
                "missing_captions",
                image,
                f"{image}: no caption file text_c10/<class>/{image.stem}.txt in any class",
            )
    return finish_source("oxford102", data_dir, split, examples, report, files, max_captions)


def _numbered_rows(file: pathlib.Path, width: int, report: DataReport) -> dict[str, list[str]]:
    """CUB's metadata lines `<image number> <width fields>`, keyed by image number."""
    rows = {}
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        fields = line.split()
        if fields and len(fields) != width + 1:
            report.add("malformed_row", file, f"{file}:{number}: expected {width + 1} fields")
        elif fields:
            rows[fields[0]] = fields[1:]
    return rows


def _read_boxes(
    root: pathlib.Path, report: DataReport
) -> dict[str, tuple[float, float, float, float]]:
    """CUB's boxes (x, y, width, height in pixels) keyed by `<class>/<name>`: images.txt maps
    image numbers to paths, bounding_boxes.txt image numbers to boxes."""
    paths = _numbered_rows(root / "images.txt", 1, report)
    boxes = {}
    for key, values in _numbered_rows(root / "bounding_boxes.txt", 4, report).items():
        try:
            box = tuple(float(v) for v in values)
        except ValueError:
            report.add("malformed_row", root / "bounding_boxes.txt", f"bad box {values} of {key}")
            continue
        if key in paths:
            boxes[paths[key][0].rsplit(".", 1)[0]] = box
    return boxes


def read_cub(
    data_dir: str | os.PathLike,
    split: str = "train",
    bounding_boxes: bool = False,
    max_captions: int | None = None,
) -> CaptionedSource:
    """CUB-200-2011 birds with Reed's ten captions per image (see the module docstring).

    Args:
        data_dir: the folder holding `CUB_200_2011/`, `text_c10/` and the split files.
        split: "train" (trainval classes), "test", "all", ...
        bounding_boxes: attach each bird's box (for the "bbox" resize policy); images without a
            box are reported and fall back to a centre crop.
        max_captions: keep at most this many captions per image.

    Ids are `<class>/<name>`, e.g. `001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111`.

    Raises:
        FileNotFoundError: files are missing; the message says which archives to get.
        ValueError: nothing usable.
    """
    data_dir = pathlib.Path(data_dir)
    root, texts = data_dir / "CUB_200_2011", data_dir / "text_c10"
    classes_file = split_file(data_dir, split)
    box_files = [root / "images.txt", root / "bounding_boxes.txt"] if bounding_boxes else []
    _require([root / "images", texts, classes_file, *box_files], data_dir, CUB_INSTRUCTIONS)
    report, examples, files = DataReport(), [], [classes_file, *box_files]
    boxes = _read_boxes(root, report) if bounding_boxes else {}
    for name in _split_classes(classes_file):
        image_folder, text_folder = root / "images" / name, texts / name
        if not image_folder.is_dir() and not text_folder.is_dir():
            report.add(
                "missing_class",
                image_folder,
                f"class {name} of {classes_file.name}: neither {image_folder} nor {text_folder}",
            )
            continue
        found = {p.stem: p for p in sorted(image_folder.glob("*.jpg"))}
        caption_files = {p.stem: p for p in sorted(text_folder.glob("*.txt"))}
        for stem in sorted(found.keys() | caption_files.keys()):
            example_id = f"{name}/{stem}"
            if stem not in caption_files:
                report.add(
                    "missing_captions",
                    found[stem],
                    f"{found[stem]}: no caption file {text_folder / (stem + '.txt')}",
                )
                continue
            files.append(caption_files[stem])
            captions = read_caption_file(caption_files[stem], report)
            if stem not in found:
                report.add(
                    "missing_image",
                    caption_files[stem],
                    f"{caption_files[stem]}: captions for {image_folder / (stem + '.jpg')}, "
                    "which does not exist",
                )
                continue
            box = boxes.get(example_id)
            if bounding_boxes and box is None and captions:
                report.add(
                    "missing_box", found[stem], f"{found[stem]}: no box in bounding_boxes.txt"
                )
            examples.append(SourceExample(example_id, found[stem], captions, name, box))
    return finish_source("cub", data_dir, split, examples, report, files, max_captions)
