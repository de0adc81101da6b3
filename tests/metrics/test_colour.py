"""The petal-colour agreement check: a perfect and a useless generator give the known answers."""

import numpy as np

from t2i_keras.data import flowers
from t2i_keras.metrics import colour


def test_perfect_generator_scores_at_the_ceiling_and_a_constant_one_at_chance():
    test = flowers.generate_examples(160, 32, seed=0, split="test")

    def perfect(captions, seed):
        # Draws a flower of the named colour (the real renderer, as an ideal generator).
        wanted = np.array(
            [
                flowers.PETAL_COLOURS.index(flowers.caption_attributes(c)["petal_colour"])
                for c in captions
            ]
        )
        attributes = flowers.sample_attributes(len(captions), np.random.default_rng(seed))
        attributes["petal_colour"] = wanted.astype(np.int32)
        return flowers.draw_flowers(attributes, 32, np.random.default_rng(seed))

    def constant(captions, seed):
        attributes = flowers.sample_attributes(len(captions), np.random.default_rng(seed))
        attributes["petal_colour"][:] = 0
        return flowers.draw_flowers(attributes, 32, np.random.default_rng(seed))

    good = colour.petal_colour_agreement(perfect, test["captions"], test["petal_colour"], 8)
    bad = colour.petal_colour_agreement(constant, test["captions"], test["petal_colour"], 8)
    assert good["overall"] >= 0.9
    assert abs(bad["overall"] - 1 / 8) < 0.05
    assert bad["red"] >= 0.9 and bad["blue"] == 0.0
    table = colour.format_table(good, good)
    assert "| red |" in table and "overall" in table
