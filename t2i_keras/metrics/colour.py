"""Does the generator follow the caption's petal colour? A quick check on procedural flowers.

For captions that name each petal colour, generate images and ask `estimate_petal_colour` (mean
hue of the petal pixels, no ground-truth masks) which named colour is nearest. The same estimator
on real held-out images gives the ceiling. The evaluation issue builds a trained attribute
classifier; this check needs no training and is what the quickstart reports.
"""

from __future__ import annotations

import numpy as np

from t2i_keras.data import flowers


def petal_colour_agreement(
    generate,
    captions: np.ndarray,
    petal_colours: np.ndarray,
    per_colour: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Fraction of generated images whose estimated petal colour is the one the caption names.

    Args:
        generate: callable(list of captions, seed) -> images [N, H, W, 3] (uint8 or [-1, 1]).
        captions: str [N, C], the held-out images' captions.
        petal_colours: int [N], their petal colour indices.
        per_colour: captions drawn per colour (each names that colour).
        seed: seeds the caption choice and the generator's noise.

    Returns:
        {colour name: fraction} for every colour with captions, plus "overall".
    """
    rng = np.random.default_rng(seed)
    chosen, wanted = [], []
    for colour_index, colour in enumerate(flowers.PETAL_COLOURS):
        naming = [
            str(c)
            for c in captions[petal_colours == colour_index].reshape(-1)
            if flowers.caption_attributes(str(c)).get("petal_colour") == colour
        ]
        if not naming:
            continue
        picked = rng.choice(len(naming), size=min(per_colour, len(naming)), replace=False)
        chosen += [naming[i] for i in picked]
        wanted += [colour_index] * len(picked)
    estimated = flowers.estimate_petal_colour(np.asarray(generate(chosen, seed)))
    return agreement_by_colour(estimated, np.asarray(wanted))


def agreement_by_colour(estimated: np.ndarray, wanted: np.ndarray) -> dict[str, float]:
    """Per-colour and overall fraction of `estimated == wanted`."""
    result = {}
    for colour_index, colour in enumerate(flowers.PETAL_COLOURS):
        mask = wanted == colour_index
        if mask.any():
            result[colour] = float(np.mean(estimated[mask] == colour_index))
    result["overall"] = float(np.mean(estimated == wanted))
    return result


def format_table(generated: dict[str, float], real: dict[str, float]) -> str:
    """A Markdown table: generated vs real (the estimator's ceiling) per colour."""
    lines = ["| petal colour | generated | real (ceiling) |", "|---|---:|---:|"]
    for name in generated:
        lines.append(f"| {name} | {generated[name]:.0%} | {real.get(name, float('nan')):.0%} |")
    return "\n".join(lines)
