"""Do captions the templates never produce still work? Paraphrases and translations, measured.

The procedural flowers' captions come from 24 English templates, so attribute accuracy on
held-out template captions says nothing about a user's own wording. `caption_robustness.json`
beside this module holds hand-written captions the templates never produce: English paraphrases
(synonyms outside the template vocabulary, similes, other word orders, terse and verbose
descriptions) and translations into 13 of the multilingual USE's 16 languages. Each is labelled
with the attributes it names. The file is evaluation data only; nothing trains on it.

A generated image is scored with the attribute classifier (`t2i_keras.metrics.attributes`)
exactly as template captions are, and the report gives accuracy per language and per kind.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from t2i_keras.metrics import attributes

CAPTION_SET = pathlib.Path(__file__).with_name("caption_robustness.json")
KINDS = ("paraphrase", "translation")


def load_caption_set(path: str | pathlib.Path = CAPTION_SET) -> list[dict]:
    """The labelled captions: dicts with `text`, `language`, `kind` and one key per attribute of
    `attributes.ATTRIBUTE_VALUES` (a value name, a count, or None when not named)."""
    rows = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    for i, row in enumerate(rows):
        missing = {"text", "language", "kind", *attributes.ATTRIBUTE_VALUES} - set(row)
        if missing:
            raise ValueError(f"{path}: caption {i} lacks {sorted(missing)}")
        if row["kind"] not in KINDS:
            raise ValueError(f"{path}: caption {i} has kind {row['kind']!r}, not one of {KINDS}")
        for name, values in attributes.ATTRIBUTE_VALUES.items():
            if row[name] is not None and row[name] not in values:
                raise ValueError(f"{path}: caption {i} names {name} {row[name]!r}, not in {values}")
        if row["petal_colour"] is None:
            raise ValueError(f"{path}: caption {i} ({row['text']!r}) names no petal colour")
    return rows


def caption_set_targets(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Labels int32 [N] per attribute in `attributes.caption_targets`' format (-1: not named)."""
    return {
        name: np.array(
            [values.index(r[name]) if r[name] is not None else attributes.NOT_NAMED for r in rows],
            np.int32,
        )
        for name, values in attributes.ATTRIBUTE_VALUES.items()
    }


def caption_robustness(
    generate: Callable[[Sequence[str], int, int], np.ndarray],
    classifier,
    rows: Sequence[dict],
    samples_per_caption: int = 2,
    seed: int = 0,
) -> dict:
    """Attribute accuracy of images generated for `rows`, overall, per kind and per language.

    Args:
        generate: (captions, num_per_caption, seed) -> uint8 [len, num, H, W, 3].
        classifier: an `AttributeClassifier` for the generator's image size.
        rows: `load_caption_set()` or a subset.
        samples_per_caption: images per caption (different noise), all scored.
        seed: the generator's noise seed.

    Returns:
        {"overall": accuracies, "by_kind": {kind: accuracies}, "by_language": {lang: accuracies},
        "counts": {"overall": n, "by_kind": ..., "by_language": ...}, "samples_per_caption": k};
        accuracies as `attributes.attribute_accuracy` returns them.
    """
    images = generate([r["text"] for r in rows], samples_per_caption, seed)
    predicted = attributes.predict_attributes(classifier, images.reshape(-1, *images.shape[2:]))
    targets = {
        name: np.repeat(values, samples_per_caption)
        for name, values in caption_set_targets(rows).items()
    }
    groups = {
        "by_kind": [r["kind"] for r in rows],
        "by_language": [r["language"] for r in rows],
    }
    report = {
        "overall": attributes.attribute_accuracy(predicted, targets),
        "counts": {"overall": len(rows)},
        "samples_per_caption": samples_per_caption,
    }
    for group, labels in groups.items():
        labels = np.repeat(np.array(labels), samples_per_caption)
        report[group], report["counts"][group] = {}, {}
        for value in sorted(set(labels)):
            keep = labels == value
            report[group][value] = attributes.attribute_accuracy(
                {k: v[keep] for k, v in predicted.items()}, {k: v[keep] for k, v in targets.items()}
            )
            report["counts"][group][value] = int(keep.sum()) // samples_per_caption
    return report


def encoder_ceiling(
    query_embeddings: np.ndarray,
    rows: Sequence[dict],
    train_embeddings: np.ndarray,
    train_captions: Sequence[str],
) -> dict:
    """How often the training caption nearest to each robustness caption names its petal colour.

    A generator learns images for the training captions; for a caption it has never seen it can
    at best draw what the encoder's nearest training caption asks for. The fraction of captions
    whose nearest training caption (cosine of the raw encoder embeddings) names the labelled
    petal colour is that ceiling, per kind and per language: where it is low, the text encoder
    itself confuses the caption, whatever the generator does.

    Args:
        query_embeddings: float [N, D], the encoder's embeddings of `rows`' texts.
        rows: the labelled captions (`load_caption_set`).
        train_embeddings: float [M, D] of training captions.
        train_captions: the M training captions (their petal colour is read by
            `attributes.caption_targets`).
    """

    def unit(x):
        x = np.asarray(x, np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    named = attributes.caption_targets(list(train_captions))["petal_colour"]
    nearest = np.argmax(unit(query_embeddings) @ unit(train_embeddings).T, axis=1)
    right = named[nearest] == caption_set_targets(rows)["petal_colour"]
    report = {"overall": float(right.mean())}
    for group, key in (("by_kind", "kind"), ("by_language", "language")):
        labels = np.array([r[key] for r in rows])
        report[group] = {v: float(right[labels == v].mean()) for v in sorted(set(labels))}
    return report
