"""Captioned image files on disk: the record every reader produces, and a user's own folder.

Every real-data reader (`reed`, `coco` and `read_folder` here) turns a layout on disk into the
same `CaptionedSource`: `SourceExample`s (image path, captions, group, optional box) and a
`DataReport` that counts everything that was wrong and says what was done about it. Readers only
parse text; images are decoded later, by `prepared` (which adds image problems to the report).
The rule throughout: bad data is reported and skipped, the rest goes on, and nothing is dropped
without being counted. `finish_source` applies the rules shared by all layouts (duplicate ids,
the caption cap, "nothing usable").

A user's own data comes in two shapes:
- a folder of images with sidecar captions, `photo.jpg` + `photo.txt` (one caption per line);
  images in subfolders take the subfolder as their group (wrong images come from other groups),
  images at the top level are each their own group;
- a CSV file with a header `image,caption` or a JSONL file of `{"image": ..., "caption": ...}`
  (or `"captions": [...]`) rows, several rows per image allowed; image paths are relative to the
  table's folder.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import json
import os
import pathlib
from collections.abc import Iterable

from t2i_keras.data.images import IMAGE_EXTENSIONS

# Every kind of problem a report can hold: its severity and what was done about it. "error"
# means data was left out; "warning" means the data was kept after a repair.
ISSUE_KINDS: dict[str, tuple[str, str]] = {
    "corrupt_image": ("error", "the image could not be decoded; its example was left out"),
    "missing_image": ("error", "captions name an image that does not exist; they were left out"),
    "missing_captions": ("error", "an image has no captions; it was left out"),
    "empty_captions": ("error", "an image's captions are all blank; it was left out"),
    "duplicate_id": ("error", "a second example with an id already seen was left out"),
    "malformed_row": ("error", "a metadata line could not be parsed and was skipped"),
    "missing_class": ("error", "a class named by the split file has no folder; it was skipped"),
    "invalid_utf8": ("warning", "caption bytes were not UTF-8; decoded with U+FFFD replacements"),
    "empty_caption": ("warning", "a blank caption was skipped; the image kept its others"),
    "extra_captions": ("warning", "captions beyond max_captions were left out"),
    "missing_box": ("warning", "no bounding box; the image was centre-cropped instead"),
    "grayscale_image": ("warning", "a grayscale image was converted to RGB"),
    "alpha_image": ("warning", "an image with transparency was composited on white"),
    "cmyk_image": ("warning", "a CMYK JPEG was converted to RGB"),
    "sixteen_bit_image": ("warning", "a 16-bit image was scaled to 8 bits"),
}


@dataclasses.dataclass
class DataReport:
    """Problems found while reading a dataset, each with its kind, file and a message."""

    issues: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def add(self, kind: str, path: str | os.PathLike, message: str) -> None:
        if kind not in ISSUE_KINDS:
            raise ValueError(f"Unknown issue kind {kind!r}; known: {sorted(ISSUE_KINDS)}")
        self.issues.append({"kind": kind, "path": str(path), "message": message})

    def counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(i["kind"] for i in self.issues).items()))

    def by_severity(self, severity: str) -> list[dict[str, str]]:
        return [i for i in self.issues if ISSUE_KINDS[i["kind"]][0] == severity]

    def summary(self, examples_per_kind: int = 3) -> str:
        """One line per kind (count, what was done) and its first few messages."""
        if not self.issues:
            return "no problems found"
        lines = []
        for kind, count in self.counts().items():
            severity, action = ISSUE_KINDS[kind]
            lines.append(f"{count} x {kind} ({severity}: {action})")
            shown = [i for i in self.issues if i["kind"] == kind][:examples_per_kind]
            lines += [f"    {i['message']}" for i in shown]
            if count > len(shown):
                lines.append(f"    ... and {count - len(shown)} more")
        return "\n".join(lines)

    def to_json(self, **header) -> dict:
        """The report file's content: `header` fields, `counts`, `errors`, `warnings`."""
        return {
            **header,
            "counts": self.counts(),
            "errors": self.by_severity("error"),
            "warnings": self.by_severity("warning"),
        }


@dataclasses.dataclass
class SourceExample:
    """One image and its captions as found on disk.

    Attributes:
        id: a stable, unique string (a path relative to the dataset without extension, or the
            image name the dataset uses).
        image_path: the image file.
        captions: the image's non-blank captions.
        group: examples of another group are valid wrong images for this one (GAN-CLS).
        box: (x, y, width, height) in pixels of the object, for the "bbox" policy; or None.
    """

    id: str
    image_path: pathlib.Path
    captions: list[str]
    group: str
    box: tuple[float, float, float, float] | None = None


@dataclasses.dataclass
class CaptionedSource:
    """A dataset as read from disk, before images are decoded.

    Attributes:
        kind: "oxford102", "cub", "coco" or "folder".
        data_dir: the folder (or table file) it was read from.
        split: the split name.
        examples: sorted by id; ids are unique and every example has at least one caption.
        report: the problems found so far.
        files: the metadata and caption files that were read; with the images, their sizes
            and modification times identify the source (the prepared cache's key).
    """

    kind: str
    data_dir: pathlib.Path
    split: str
    examples: list[SourceExample]
    report: DataReport
    files: list[pathlib.Path]


def decode_text(data: bytes) -> tuple[str, int]:
    """UTF-8 text with invalid bytes replaced by U+FFFD (and a leading BOM dropped), and the
    number of invalid bytes, so that a wrong encoding is counted rather than silently kept."""
    text = data.decode("utf-8", "surrogateescape")
    invalid = sum(1 for ch in text if "\udc80" <= ch <= "\udcff")
    if invalid:
        text = data.decode("utf-8", "replace")
    return text.removeprefix("\ufeff"), invalid


def clean_caption(
    caption: str, path: str | os.PathLike, report: DataReport, where: str = ""
) -> str:
    """A caption with invalid bytes replaced (lone surrogates from a `surrogateescape` decode,
    as `csv`/`json` hand them over) and whitespace collapsed; counts invalid bytes.

    Args:
        caption: the text as parsed.
        path: the file it came from; `where` locates it inside (e.g. ":12" for a line).
        report: where invalid bytes are counted.
    """
    invalid = sum(1 for ch in caption if "\udc80" <= ch <= "\udcff")
    if invalid:
        caption = caption.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        report.add(
            "invalid_utf8",
            path,
            f"{path}{where}: {invalid} bytes of a caption are not UTF-8 (replaced by U+FFFD)",
        )
    return " ".join(caption.split())


def read_caption_file(path: pathlib.Path, report: DataReport) -> list[str]:
    """The non-blank lines of a caption file; reports invalid UTF-8 and files with no caption."""
    text, invalid = decode_text(path.read_bytes())
    if invalid:
        report.add(
            "invalid_utf8", path, f"{path}: {invalid} bytes are not UTF-8 (replaced by U+FFFD)"
        )
    captions = [" ".join(line.split()) for line in text.splitlines()]
    captions = [c for c in captions if c]
    if not captions:
        report.add("empty_captions", path, f"{path}: the caption file has no non-blank line")
    return captions


def finish_source(
    kind: str,
    data_dir: pathlib.Path,
    split: str,
    examples: Iterable[SourceExample],
    report: DataReport,
    files: list[pathlib.Path],
    max_captions: int | None = None,
) -> CaptionedSource:
    """The rules every layout shares: the first example with an id wins (later ones are
    reported as duplicates), captions beyond `max_captions` are counted and dropped, examples
    are sorted by id, and a source with nothing usable is an error.

    Raises:
        ValueError: no example is left; the message summarizes the report.
    """
    kept: dict[str, SourceExample] = {}
    for example in examples:
        if not example.captions:
            continue  # the reader has reported why
        if example.id in kept:
            report.add(
                "duplicate_id",
                example.image_path,
                f"{example.image_path}: id {example.id!r} is already used by "
                f"{kept[example.id].image_path}; this one was left out",
            )
            continue
        if max_captions is not None and len(example.captions) > max_captions:
            report.add(
                "extra_captions",
                example.image_path,
                f"{example.image_path}: kept {max_captions} of {len(example.captions)} captions",
            )
            example.captions = example.captions[:max_captions]
        kept[example.id] = example
    if not kept:
        raise ValueError(
            f"No usable example in {data_dir} ({kind}, split {split!r}): every image was left "
            f"out. Problems found:\n{report.summary()}"
        )
    return CaptionedSource(
        kind, data_dir, split, [kept[k] for k in sorted(kept)], report, sorted(set(files))
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
