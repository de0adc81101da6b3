"""A user's own captioned images on disk, read into a `records.CaptionedSource`.

A user's own data comes in two shapes:
- a folder of images with sidecar captions, `photo.jpg` + `photo.txt` (one caption per line);
  images in subfolders take the subfolder as their group (wrong images come from other groups),
  images at the top level are each their own group;
- a CSV file with a header `image,caption` or a JSONL file of `{"image": ..., "caption": ...}`
  (or `"captions": [...]`) rows, several rows per image allowed; image paths are relative to the
  table's folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
from collections.abc import Iterable

from t2i_keras.data.images import IMAGE_EXTENSIONS
from t2i_keras.data.records import (
    CaptionedSource,
    DataReport,
    SourceExample,
    clean_caption,
    finish_source,
    read_caption_file,
)


def _is_image(path: pathlib.Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _visible_files(root: pathlib.Path) -> list[pathlib.Path]:
    """Files under `root`, sorted, skipping hidden files and folders (.git, .ipynb_checkpoints)."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found += [pathlib.Path(folder, n) for n in sorted(names) if not n.startswith(".")]
    return found


def _identity(image: pathlib.Path, root: pathlib.Path) -> tuple[str, str]:
    """(id, group): the path relative to `root` without extension, and its folder (the id
    itself for top-level images, which then form groups of one)."""
    relative = image.relative_to(root).with_suffix("")
    parent = relative.parent.as_posix()
    return relative.as_posix(), relative.as_posix() if parent == "." else parent


def _read_sidecar_folder(
    root: pathlib.Path, report: DataReport
) -> tuple[list[SourceExample], list[pathlib.Path]]:
    files = _visible_files(root)
    texts = {p.with_suffix(""): p for p in files if p.suffix.lower() == ".txt"}
    image_stems = {p.with_suffix("") for p in files if _is_image(p)}
    examples, read = [], []
    for image in (p for p in files if _is_image(p)):
        sidecar = texts.get(image.with_suffix(""))
        if sidecar is None:
            report.add(
                "missing_captions", image, f"{image}: no caption file {image.with_suffix('.txt')}"
            )
            continue
        read.append(sidecar)
        example_id, group = _identity(image, root)
        examples.append(SourceExample(example_id, image, read_caption_file(sidecar, report), group))
    for stem, text in texts.items():
        if stem not in image_stems:
            report.add(
                "missing_image",
                text,
                f"{text}: captions for an image {stem.name}.* that does not exist "
                f"(expected one of {', '.join(IMAGE_EXTENSIONS)})",
            )
    return examples, read


def _table_rows(table: pathlib.Path, report: DataReport) -> Iterable[tuple[int, object, object]]:
    """(line number, image, caption or captions) of each row of a CSV or JSONL table."""
    text = table.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    if table.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or not {"image", "caption"} <= set(reader.fieldnames):
            raise ValueError(
                f"{table} must start with a header row naming the columns 'image' and "
                f"'caption'; found {reader.fieldnames}"
            )
        for row in reader:
            yield reader.line_num, row.get("image"), row.get("caption")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            report.add("malformed_row", table, f"{table}:{number}: not JSON ({error.msg})")
            continue
        if not isinstance(row, dict):
            report.add("malformed_row", table, f"{table}:{number}: a JSON object is expected")
            continue
        yield number, row.get("image"), row.get("caption", row.get("captions"))


def _read_table(
    table: pathlib.Path, report: DataReport
) -> tuple[list[SourceExample], list[pathlib.Path]]:
    # Absolute but not resolved: a symlinked image keeps its place (and id) in the folder.
    root = pathlib.Path(os.path.abspath(table.parent))
    captions: dict[pathlib.Path, list[str]] = {}
    for number, image, caption in _table_rows(table, report):
        texts = caption if isinstance(caption, list) else [caption]
        if not isinstance(image, str) or not image or not all(isinstance(t, str) for t in texts):
            report.add(
                "malformed_row",
                table,
                f"{table}:{number}: needs an image path and a caption string (or a list of them)",
            )
            continue
        path = pathlib.Path(os.path.normpath(root / image.strip()))
        kept = captions.setdefault(path, [])
        for text in texts:
            text = clean_caption(text, table, report, f":{number}")
            if text:
                kept.append(text)
            else:
                report.add("empty_caption", table, f"{table}:{number}: blank caption for {path}")
    examples = []
    for path, texts in captions.items():
        if not path.is_file():
            report.add(
                "missing_image",
                path,
                f"{table}: {len(texts)} captions for {path}, which does not exist",
            )
        elif not texts:
            report.add("empty_captions", path, f"{table}: every caption of {path} is blank")
        else:
            inside = path.is_relative_to(root)
            example_id, group = _identity(path, root) if inside else (str(path),) * 2
            examples.append(SourceExample(example_id, path, texts, group))
    return examples, [table]


def read_folder(
    data_dir: str | os.PathLike, split: str = "train", max_captions: int | None = None
) -> CaptionedSource:
    """A user's own captioned images: a folder with sidecar `.txt` files, or a CSV/JSONL table.

    Args:
        data_dir: a folder (sidecar captions) or a `.csv` / `.jsonl` file (see the module
            docstring for both formats).
        split: a label only: a folder or table holds one split, so point `data_dir` at each
            split's own folder or table.
        max_captions: keep at most this many captions per image (the rest are counted).

    Raises:
        FileNotFoundError: `data_dir` does not exist.
        ValueError: a table without the required columns, or nothing usable.
    """
    data_dir = pathlib.Path(data_dir)
    report = DataReport()
    if data_dir.is_file() and data_dir.suffix.lower() in (".csv", ".jsonl"):
        examples, files = _read_table(data_dir, report)
    elif data_dir.is_dir():
        examples, files = _read_sidecar_folder(data_dir, report)
    else:
        raise FileNotFoundError(
            f"{data_dir} is neither a folder of images with sidecar .txt captions nor a .csv / "
            ".jsonl table of image,caption rows"
        )
    return finish_source("folder", data_dir, split, examples, report, files, max_captions)
