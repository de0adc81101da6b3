"""The caption-robustness set and its metric: labels valid, outside the templates, a drawer of
the named attributes scores far above a drawer that ignores the caption."""

import numpy as np
import pytest

from t2i_keras.data import flowers
from t2i_keras.metrics import attributes, robustness
from tests.metrics.test_attributes import TINY_CLASSIFIER


@pytest.fixture(scope="module")
def rows():
    return robustness.load_caption_set()


def test_the_set_is_large_multilingual_and_fully_labelled(rows):
    assert len(rows) >= 200
    languages = {r["language"] for r in rows if r["kind"] == "translation"}
    assert len(languages) >= 6 and "en" not in languages
    for language in languages:
        colours = {r["petal_colour"] for r in rows if r["language"] == language}
        assert colours == set(flowers.PETAL_COLOURS), language
    assert sum(r["kind"] == "paraphrase" for r in rows) >= 100


def test_no_caption_is_one_the_templates_produce(rows):
    template_captions = set(
        str(c).lower()
        for c in flowers.generate_examples(3000, 16, seed=0, split="train")["captions"].ravel()
    )
    assert not template_captions & {r["text"].lower() for r in rows}


def test_english_petal_colours_agree_with_the_template_parser_where_it_reads_them(rows):
    """Where an English paraphrase that names no centre uses a template colour word, that word is
    its petal colour (with a centre the parser may take the centre's colour for the petals':
    paraphrases name centres with nouns it does not know, such as "heart")."""
    checked = 0
    for row in rows:
        if row["language"] != "en" or row["centre_colour"] is not None:
            continue
        try:
            parsed = flowers.caption_attributes(row["text"])
        except ValueError:
            continue
        if "petal_colour" in parsed:
            assert row["petal_colour"] == parsed["petal_colour"], row["text"]
            checked += 1
    assert checked >= 20


def test_a_bad_label_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '[{"text": "x", "language": "en", "kind": "paraphrase", "petal_colour": "teal",'
        ' "centre_colour": null, "petal_shape": null, "petal_count": null}]'
    )
    with pytest.raises(ValueError, match="teal"):
        robustness.load_caption_set(bad)


def _drawer(rows_by_text, follow_caption):
    """A stand-in generator: procedural flowers with the caption's labels (or random ones)."""

    def generate(captions, per_caption, seed):
        rng = np.random.default_rng(seed)
        n = len(captions) * per_caption
        drawn = flowers.sample_attributes(n, rng)
        if follow_caption:
            targets = robustness.caption_set_targets([rows_by_text[c] for c in captions])
            for name, labels in targets.items():
                labels = np.repeat(labels, per_caption)
                value = labels + (3 if name == "petal_count" else 0)
                drawn[name] = np.where(labels >= 0, value, drawn[name]).astype(np.int32)
        images = flowers.draw_flowers(drawn, TINY_CLASSIFIER["image_size"], rng)
        return images.reshape(len(captions), per_caption, *images.shape[1:])

    return generate


def test_a_caption_following_drawer_beats_one_that_ignores_the_caption(rows, isolated_cache):
    classifier = attributes.load_attribute_classifier(
        attributes.ClassifierSettings(**TINY_CLASSIFIER)
    )
    subset = rows[::3]
    by_text = {r["text"]: r for r in subset}
    good = robustness.caption_robustness(_drawer(by_text, True), classifier, subset, 2, seed=1)
    blind = robustness.caption_robustness(_drawer(by_text, False), classifier, subset, 2, seed=1)
    # The tiny classifier reads petal colour at about 90%; chance is 12.5%.
    assert good["overall"]["petal_colour"] > 0.75
    assert blind["overall"]["petal_colour"] < 0.3
    assert set(good["by_language"]) == {r["language"] for r in subset}
    assert sum(good["counts"]["by_language"].values()) == len(subset)
    for language, scores in good["by_language"].items():
        assert scores["petal_colour"] > blind["by_language"][language]["petal_colour"], language


def test_encoder_ceiling_reads_the_nearest_training_captions_colour():
    rows = [
        {"text": "q1", "language": "en", "kind": "paraphrase", "petal_colour": "red"},
        {"text": "q2", "language": "fr", "kind": "translation", "petal_colour": "blue"},
        {"text": "q3", "language": "fr", "kind": "translation", "petal_colour": "pink"},
    ]
    rows = [{**r, "centre_colour": None, "petal_shape": None, "petal_count": None} for r in rows]
    train = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    captions = ["a red flower", "a blue flower", "a white flower"]
    # q1 nearest "red" (right), q2 nearest "blue" (right), q3 nearest "white" (wrong: pink).
    queries = np.array([[0.9, 0.1, 0.0], [0.2, 3.0, 0.1], [0.1, 0.0, 0.5]])
    ceiling = robustness.encoder_ceiling(queries, rows, train, captions)
    assert ceiling["overall"] == pytest.approx(2 / 3)
    assert ceiling["by_language"] == {"en": 1.0, "fr": 0.5}
    assert ceiling["by_kind"] == {"paraphrase": 1.0, "translation": 0.5}
