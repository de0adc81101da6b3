"""The record every real-data reader produces: `CaptionedSource` (its `SourceExample`s) and the
`DataReport` of what was wrong and what was done about it.

Every reader (`reed`, `coco`, `folder`) turns a layout on disk into the same `CaptionedSource`.
Readers only parse text; images are decoded later, by `prepared` (which adds image problems to
the report). The rule throughout: bad data is reported and skipped, the rest goes on, and nothing
is dropped without being counted. `finish_source` applies the rules shared by all layouts
(duplicate ids, the caption cap, "nothing usable").
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
from collections.abc import Iterable

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
