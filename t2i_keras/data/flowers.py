"""Procedural captioned flowers: the built-in dataset, after Oxford-102 with Reed's captions.

Oxford-102 and its captions cannot be fetched on every machine, yet the main job must train on
something real enough to show conditioning. Each image is drawn with vectorized numpy from
attributes (petal colour, centre colour, petal count, petal shape, size, background) with random
position, rotation, shading and noise, and gets ten captions from 24 templates with synonyms,
varied word order and partial descriptions. Everything is deterministic by (seed, split), and the
attributes travel with each example so generated images can be scored against them.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

PETAL_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
PETAL_COLOUR_RGB = {
    "red": (215, 25, 30),
    "orange": (245, 125, 15),
    "yellow": (250, 215, 25),
    "green": (70, 200, 45),
    "blue": (35, 75, 235),
    "purple": (135, 40, 200),
    "pink": (250, 115, 185),
    "white": (245, 244, 238),
}
CENTRE_COLOURS = ("yellow", "brown", "black", "white")
CENTRE_COLOUR_RGB = {
    "yellow": (240, 200, 30),
    "brown": (110, 65, 25),
    "black": (25, 20, 20),
    "white": (240, 240, 235),
}
PETAL_SHAPES = ("round", "pointed", "thin")
PETAL_COUNTS = tuple(range(3, 9))
SIZES = ("small", "medium", "large")
BACKGROUNDS = ("foliage", "sky", "soil", "stone")
# Backgrounds are muted (low saturation, mid value) so that the petals stay the salient colour.
BACKGROUND_RGB = {
    "foliage": (48, 78, 44),
    "sky": (128, 150, 176),
    "soil": (96, 74, 56),
    "stone": (112, 110, 106),
}
_SIZE_RADIUS = {"small": 0.5, "medium": 0.64, "large": 0.8}  # petal length, in half-image units

# Caption vocabulary. A colour word names the centre exactly when a centre noun follows it.
PETAL_COLOUR_WORDS = {
    "red": ("red", "scarlet", "crimson"),
    "orange": ("orange", "tangerine"),
    "yellow": ("yellow", "golden"),
    "green": ("green", "lime green"),
    "blue": ("blue", "azure"),
    "purple": ("purple", "violet"),
    "pink": ("pink", "rosy pink"),
    "white": ("white", "ivory"),
}
CENTRE_COLOUR_WORDS = {
    "yellow": ("yellow", "golden"),
    "brown": ("brown",),
    "black": ("black", "dark"),
    "white": ("white",),
}
SHAPE_WORDS = {
    "round": ("round", "rounded", "oval"),
    "pointed": ("pointed", "pointy", "sharp"),
    "thin": ("thin", "narrow", "slender"),
}
COUNT_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
CENTRE_NOUNS = ("centre", "center", "stamen", "pistil", "middle")

# {pc} petal colour, {cc} centre colour (always right before {cn}, a centre noun), {n} count,
# {sh} shape, {sz} size. Every template names the petal colour; most leave something out.
TEMPLATES = (
    "this flower has petals that are {pc} and has {cc} {cn}",
    "this flower has {n} {sh} {pc} petals and a {cc} {cn}",
    "a {sz} flower with {pc} petals",
    "the petals of this flower are {pc} and {sh}",
    "a flower with {n} {pc} petals",
    "this {pc} flower has {sh} petals",
    "{pc} petals surround a {cc} {cn}",
    "this flower is {pc} in color, with petals that are {sh}",
    "a {sz} {pc} flower with a {cc} {cn}",
    "this flower has {n} petals that are {pc}",
    "the flower shown has {sh} petals colored {pc} around a {cc} {cn}",
    "a {pc} flower with {n} {sh} petals",
    "there are {n} {pc} petals on this {sz} flower",
    "this flower has {pc} petals",
    "{n} {sh} petals in {pc} and a {cc} {cn}",
    "the {sz} flower has {pc} petals and a {cc} {cn}",
    "petals that are {pc} and {sh} grow from a {cc} {cn}",
    "this is a {pc} flower",
    "a close up of a {pc} flower with {sh} petals",
    "this flower has {sh} petals which are {pc}, and a {cc} {cn}",
    "a {sz} flower whose {n} petals are {pc}",
    "{pc} flower, {n} petals, {cc} {cn}",
    "the {pc} petals of this flower are {sh} and there are {n} of them",
    "a picture of a {sz} flower with {sh} {pc} petals",
)

_ARTICLE = re.compile(r"(^|\s)a ([aeiou])")
_EXAMPLES_PER_CHUNK_PIXELS = 1 << 21  # about 2M pixels per drawing chunk (bounded memory)


def _split_seed(seed: int, split: str) -> int:
    """Disjoint streams per split: the split name is hashed into the seed sequence."""
    return int(np.random.SeedSequence([seed, zlib.crc32(split.encode())]).generate_state(1)[0])


def sample_attributes(num: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Independent uniform attributes per flower (int32 indices; petal_count holds the count)."""
    return {
        "petal_colour": rng.integers(0, len(PETAL_COLOURS), num).astype(np.int32),
        "centre_colour": rng.integers(0, len(CENTRE_COLOURS), num).astype(np.int32),
        "petal_count": rng.integers(PETAL_COUNTS[0], PETAL_COUNTS[-1] + 1, num).astype(np.int32),
        "petal_shape": rng.integers(0, len(PETAL_SHAPES), num).astype(np.int32),
        "size": rng.integers(0, len(SIZES), num).astype(np.int32),
        "background": rng.integers(0, len(BACKGROUNDS), num).astype(np.int32),
    }


def _table(names, mapping) -> np.ndarray:
    return np.array([mapping[n] for n in names], np.float32)


def _smooth_noise(rng, num, size, waves=4):
    """Low-frequency texture: a sum of random plane waves, [num, size, size] in about [-1, 1]."""
    grid = np.linspace(-1, 1, size, dtype=np.float32)
    freq = rng.uniform(1.5, 6.0, (num, waves, 2)).astype(np.float32) * np.pi
    phase = rng.uniform(0, 2 * np.pi, (num, waves)).astype(np.float32)
    field = np.zeros((num, size, size), np.float32)
    for k in range(waves):
        fy = freq[:, k, 0, None, None] * grid[None, :, None]
        fx = freq[:, k, 1, None, None] * grid[None, None, :]
        field += np.sin(fy + fx + phase[:, k, None, None])
    return field / np.sqrt(waves)


def draw_flowers(
    attributes: dict[str, np.ndarray], image_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws one flower per attribute row: uint8 [N, image_size, image_size, 3].

    Petals are drawn in polar coordinates around a random centre: the angle is folded into one
    petal's sector and a pixel belongs to the petal when its distance from the petal's axis is
    within the shape's half-width at that radius. All images of a chunk are drawn at once.
    """
    num = len(attributes["petal_colour"])
    s = image_size
    grid = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1
    pixel = 2.0 / s

    centre = rng.uniform(-0.14, 0.14, (num, 2)).astype(np.float32)
    rotation = rng.uniform(0, 2 * np.pi, num).astype(np.float32)
    size_names = np.array(SIZES)[attributes["size"]]
    radius = np.array([_SIZE_RADIUS[n] for n in size_names], np.float32)
    radius *= rng.uniform(0.92, 1.08, num).astype(np.float32)
    count = attributes["petal_count"].astype(np.float32)

    dy = grid[None, :, None] - centre[:, 1, None, None]
    dx = grid[None, None, :] - centre[:, 0, None, None]
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx) - rotation[:, None, None]
    sector = 2 * np.pi / count[:, None, None]
    offset = (theta / sector + 0.5) % 1.0 - 0.5  # angle from the nearest petal axis, in sectors
    across = r * np.abs(np.sin(offset * sector))  # distance from that axis
    t = r / radius[:, None, None]  # position along the petal, 0 at the centre, 1 at the tip

    # Half-width profiles along the petal, relative to the sector's own width at mid-length.
    sector_width = radius * np.sin(np.pi / count)
    base = np.clip(t, 0, 1)
    round_w = 0.95 * sector_width[:, None, None] * np.sqrt(np.clip(1 - (2 * base - 1) ** 2, 0, 1))
    pointed_w = 1.15 * sector_width[:, None, None] * np.sqrt(base) * (1 - base) * 2.6 / 1.54
    thin_w = 0.11 * radius[:, None, None] * np.sqrt(np.clip(1 - (2 * base - 1) ** 2, 0, 1))
    shape = attributes["petal_shape"][:, None, None]
    half_width = np.where(shape == 0, round_w, np.where(shape == 1, pointed_w, thin_w))
    # Soft edges (about one pixel of anti-aliasing) keep shapes legible at 32x32.
    petal = np.clip((half_width - across) / pixel + 0.5, 0, 1) * (t < 1.0)

    disc_radius = radius * rng.uniform(0.17, 0.24, num).astype(np.float32)
    disc = np.clip((disc_radius[:, None, None] - r) / pixel + 0.5, 0, 1)

    background_rgb = _table(BACKGROUNDS, BACKGROUND_RGB)[attributes["background"]]
    texture = _smooth_noise(rng, num, s)
    image = background_rgb[:, None, None, :] * (1 + 0.22 * texture[..., None])

    petal_rgb = _table(PETAL_COLOURS, PETAL_COLOUR_RGB)[attributes["petal_colour"]]
    petal_rgb = np.clip(petal_rgb + rng.normal(0, 10, (num, 3)).astype(np.float32), 0, 255)
    # Shading: darker at the base and along the edges, as light falls on a curved petal.
    relief = 0.78 + 0.22 * np.clip(1 - across / (half_width + 1e-6), 0, 1) * (0.6 + 0.4 * base)
    petal_colour = petal_rgb[:, None, None, :] * relief[..., None]
    image = image * (1 - petal[..., None]) + petal_colour * petal[..., None]

    centre_rgb = _table(CENTRE_COLOURS, CENTRE_COLOUR_RGB)[attributes["centre_colour"]]
    speckle = 1 + 0.12 * np.sin(37 * dx) * np.sin(41 * dy)
    centre_colour = centre_rgb[:, None, None, :] * speckle[..., None]
    image = image * (1 - disc[..., None]) + centre_colour * disc[..., None]

    light = rng.uniform(0.85, 1.1, (num, 1, 1, 1)).astype(np.float32)
    image = image * light + rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_captions(
    attributes: dict[str, np.ndarray], rng: np.random.Generator, per_image: int = 10
) -> np.ndarray:
    """Ten captions per image from distinct templates with random synonyms: str [N, per_image]."""
    num = len(attributes["petal_colour"])
    captions = np.empty((num, per_image), dtype=object)
    for i in range(num):
        petal = PETAL_COLOURS[attributes["petal_colour"][i]]
        centre = CENTRE_COLOURS[attributes["centre_colour"][i]]
        shape = PETAL_SHAPES[attributes["petal_shape"][i]]
        count = int(attributes["petal_count"][i])
        size = SIZES[attributes["size"][i]]
        for j, template in enumerate(rng.choice(len(TEMPLATES), per_image, replace=False)):
            caption = TEMPLATES[template].format(
                pc=rng.choice(PETAL_COLOUR_WORDS[petal]),
                cc=rng.choice(CENTRE_COLOUR_WORDS[centre]),
                cn=rng.choice(CENTRE_NOUNS),
                sh=rng.choice(SHAPE_WORDS[shape]),
                n=COUNT_WORDS[count] if rng.random() < 0.8 else str(count),
                sz=size,
            )
            captions[i, j] = _ARTICLE.sub(r"\1an \2", caption)
    return captions


def generate_examples(
    num_examples: int, image_size: int = 64, seed: int = 0, split: str = "train"
) -> dict[str, np.ndarray]:
    """A split of procedural flowers in memory.

    Args:
        num_examples: how many flowers.
        image_size: side in pixels (32, 64, 128 and 256 are the supported sizes; any >= 16 works).
        seed: dataset seed; `(seed, split)` fixes every pixel and caption.
        split: "train", "test" or any name; different names give disjoint random streams.

    Returns:
        `image` uint8 [N, S, S, 3]; `captions` str [N, 10] (object array); `petal_colour`,
        `centre_colour`, `petal_count`, `petal_shape`, `size`, `background`, `class_id` int32 [N]
        (indices into the constants of this module; `petal_count` is the count itself, 3-8;
        `class_id` is the petal colour index); `id` str [N], e.g. "train-s0-000042".
    """
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16, got {image_size}")
    rng = np.random.default_rng(_split_seed(seed, split))
    attributes = sample_attributes(num_examples, rng)
    chunk = max(1, _EXAMPLES_PER_CHUNK_PIXELS // (image_size * image_size))
    images = np.empty((num_examples, image_size, image_size, 3), np.uint8)
    for start in tqdm(
        range(0, num_examples, chunk),
        desc=f"drawing {split} flowers",
        unit="chunk",
        disable=num_examples < 20 * chunk,
    ):
        part = {k: v[start : start + chunk] for k, v in attributes.items()}
        images[start : start + chunk] = draw_flowers(part, image_size, rng)
    captions = make_captions(attributes, rng)
    return {
        "image": images,
        "captions": captions,
        **attributes,
        # Petal colour is the attribute every caption names: a different petal colour is always
        # a mismatch, so it is the class from which GAN-CLS draws wrong images.
        "class_id": attributes["petal_colour"].copy(),
        "id": np.array([f"{split}-s{seed}-{i:06d}" for i in range(num_examples)]),
    }


ATTRIBUTE_KEYS = (
    "petal_colour",
    "centre_colour",
    "petal_count",
    "petal_shape",
    "size",
    "background",
)


def flowers_dataset(
    num_examples: int, image_size: int = 64, seed: int = 0, split: str = "train"
) -> tf.data.Dataset:
    """`generate_examples` as a `tf.data.Dataset` of dicts (one flower per element).

    Elements: `image` uint8 [S, S, 3] in [0, 255]; `captions` tf.string [10]; the attribute keys
    and `class_id` int32 scalars; `id` tf.string scalar.
    """
    examples = generate_examples(num_examples, image_size, seed, split)
    examples["captions"] = examples["captions"].astype(str)
    return tf.data.Dataset.from_tensor_slices(examples)


_WORD = re.compile(r"[a-z0-9]+")
_COLOUR_LOOKUP = {w: c for c, ws in PETAL_COLOUR_WORDS.items() for w in ws if " " not in w}
_CENTRE_LOOKUP = {w: c for c, ws in CENTRE_COLOUR_WORDS.items() for w in ws}
_SHAPE_LOOKUP = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
_COUNT_LOOKUP = {**{w: n for n, w in COUNT_WORDS.items()}, **{str(n): n for n in COUNT_WORDS}}


def caption_attributes(caption: str) -> dict[str, object]:
    """The attributes a caption names: `petal_colour`, `centre_colour`, `petal_count`,
    `petal_shape` (canonical names; the count as an int). Absent keys were not mentioned.

    A colour word right before a centre noun names the centre; any other names the petals.
    "lime green" and "rosy pink" reduce to their last word. Conflicting words raise ValueError.
    """
    words = _WORD.findall(caption.lower())
    found: dict[str, set] = {}
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ""
        if following in CENTRE_NOUNS and word in _CENTRE_LOOKUP:
            found.setdefault("centre_colour", set()).add(_CENTRE_LOOKUP[word])
        elif word in _COLOUR_LOOKUP and following not in CENTRE_NOUNS:
            found.setdefault("petal_colour", set()).add(_COLOUR_LOOKUP[word])
        elif word in _SHAPE_LOOKUP:
            found.setdefault("petal_shape", set()).add(_SHAPE_LOOKUP[word])
        elif word in _COUNT_LOOKUP:
            found.setdefault("petal_count", set()).add(_COUNT_LOOKUP[word])
    result = {}
    for key, values in found.items():
        if len(values) > 1:
            raise ValueError(f"caption names several {key} values {sorted(values)}: {caption!r}")
        result[key] = values.pop()
    return result


def _hsv_features(rgb: np.ndarray) -> np.ndarray:
    """Colours as points of the HSV cone (s·cos h, s·sin h, v): hue distances wrap around, and
    unsaturated colours (white) sit on the axis whatever their nominal hue."""
    rgb = rgb.astype(np.float32) / 255.0
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    s = np.where(v > 0, c / np.maximum(v, 1e-6), 0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(c, 1e-6)
    h = np.where(
        v == r, ((g - b) / safe) % 6, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)
    ) * (np.pi / 3)
    return np.stack([s * np.cos(h), s * np.sin(h), 0.6 * v], axis=-1)


_REFERENCE_FEATURES = _hsv_features(_table(PETAL_COLOURS, PETAL_COLOUR_RGB))


def estimate_petal_colour(images: np.ndarray) -> np.ndarray:
    """The nearest named petal colour of each image, from its petal pixels, without masks.

    Meant for *generated* images, which have no masks: the background colour is taken from the
    border, the third of the pixels farthest from it are the flower, and a ring around the
    flower's centroid is dropped to keep the centre disc out. The median colour of what is left
    is matched to the reference colours in the HSV cone.

    Args:
        images: [N, H, W, 3], uint8 or float in [-1, 1].

    Returns:
        int [N], indices into PETAL_COLOURS.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip((images.astype(np.float32) + 1) * 127.5, 0, 255)
    images = images.astype(np.float32)
    n, h, w, _ = images.shape
    border = np.concatenate(
        [
            images[:, :2].reshape(n, -1, 3),
            images[:, -2:].reshape(n, -1, 3),
            images[:, :, :2].reshape(n, -1, 3),
            images[:, :, -2:].reshape(n, -1, 3),
        ],
        axis=1,
    )
    background = np.median(border, axis=1)
    pixels = images.reshape(n, -1, 3)
    distance = np.linalg.norm(pixels - background[:, None, :], axis=-1)
    # Flower pixels stand out from the background by more than its own texture does.
    border_spread = np.quantile(
        np.linalg.norm(border - background[:, None, :], axis=-1), 0.95, axis=1
    )
    threshold = np.maximum(45.0, 1.25 * border_spread)[:, None]
    flower = distance > threshold
    fallback = distance >= np.quantile(distance, 0.9, axis=1, keepdims=True)
    flower = np.where(flower.sum(1, keepdims=True) >= 8, flower, fallback)
    ys, xs = np.divmod(np.arange(h * w), w)
    weight = flower.astype(np.float32)
    total = np.maximum(weight.sum(1), 1)
    cy, cx = (weight * ys).sum(1) / total, (weight * xs).sum(1) / total
    from_centre = np.hypot(ys[None] - cy[:, None], xs[None] - cx[:, None]) / max(h, w)
    keep = flower & (from_centre > 0.12)
    keep = np.where(keep.any(1, keepdims=True), keep, flower)
    result = np.empty(n, np.int64)
    for i in range(n):
        colour = np.median(pixels[i][keep[i]], axis=0)
        features = _hsv_features(colour)
        result[i] = np.argmin(np.linalg.norm(_REFERENCE_FEATURES - features, axis=-1))
    return result
