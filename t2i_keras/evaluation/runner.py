"""Evaluation reports: image quality, text-image consistency and samples of a trained generator.

For a run directory or an exported SavedModel, `evaluate` draws one image for each of N held-out
(image, caption) pairs and measures, each next to the same measure on real held-out images (the
ceiling):
- FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) against all real test images; the
  ceiling is a sample of N real *training* images against the same test images, so both FIDs
  share N and the reference (FID is biased upwards at small N: compare at equal N only);
- attribute accuracy (procedural flowers only, `t2i_keras.metrics.attributes`): does the image
  show the petal colour, centre colour, petal count and shape its caption names? The ceiling
  scores the real image each caption was written for;
- R-precision (AttnGAN, Xu et al. 2018; `t2i_keras.metrics.r_precision`): is the image's own
  caption the best match among 100? The ceiling ranks the captions for their real images;
- caption robustness (procedural flowers only, `t2i_keras.metrics.robustness`): attribute
  accuracy on hand-written paraphrases and translations the templates never produce;
- diversity (`t2i_keras.metrics.diversity`): how far apart the images of one caption are under
  different noise, next to real images that fit the caption as well.
It also draws caption grids and, for runs, the training curves, and writes `report.json` and a
readable `report.md`. `t2i-keras evaluate` is the command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from t2i_keras.config import Config, get_preset
from t2i_keras.data.splits import CaptionedImages, load_split, sample_caption_pairs, split_identity
from t2i_keras.evaluation.report import write_report
from t2i_keras.metrics import attributes, diversity, fid, r_precision, robustness
from t2i_keras.metrics.inception import InceptionFeatures
from t2i_keras.serving import export
from t2i_keras.text.embeddings import embed_captions
from t2i_keras.text.encoder import TextEncoder, encoder_identity
from t2i_keras.training.runs import generate_images, load_run
from t2i_keras.utils import plots
from t2i_keras.utils.files import cache_key

# (captions, num_per_caption, seed) -> uint8 [len(captions), num_per_caption, H, W, 3]
GenerateFn = Callable[[Sequence[str], int, int], np.ndarray]


@dataclasses.dataclass
class EvaluationOptions:
    """What `evaluate` measures and how much it spends.

    Args:
        num_samples: generated images, one per held-out (image, caption) pair.
        seed: seeds the pairs, the generator's noise, the distractor captions and the samples.
        batch_size: captions per generator call (a SavedModel refuses more than its max_batch).
        kid_subsets: random subsets KID averages over.
        num_candidates: captions ranked per image for R-precision (100 in AttnGAN).
        r_precision_repeats: R-precision is repeated with fresh distractors this many times.
        grid_captions: held-out captions in the sample grid.
        grid_samples: generated samples per caption in the grids.
        classifier_images: training flowers of the attribute classifier.
        classifier_epochs: its training epochs.
        matcher_epochs: training epochs of R-precision's image-caption matcher.
        robustness_samples: generated images per caption of the robustness set.
        diversity_captions: held-out captions the diversity is measured on.
        diversity_samples: images per caption (noise vectors) for the diversity.
        progress: progress bars and per-stage messages.
    """

    num_samples: int = 500
    seed: int = 0
    batch_size: int = 64
    kid_subsets: int = 100
    num_candidates: int = r_precision.NUM_CANDIDATES
    r_precision_repeats: int = 3
    grid_captions: int = 8
    grid_samples: int = 6
    classifier_images: int = attributes.DEFAULT_TRAIN_IMAGES
    classifier_epochs: int = attributes.DEFAULT_EPOCHS
    matcher_epochs: int = 20
    robustness_samples: int = 2
    diversity_captions: int = 32
    diversity_samples: int = 8
    progress: bool = True


@dataclasses.dataclass
class ModelUnderTest:
    """A generator to evaluate, with the data configuration it is evaluated on.

    Attributes:
        path: the run directory or the SavedModel folder.
        kind: "run" or "saved_model".
        config: the run's config; for a SavedModel, a preset's with the image size read from
            the export.
        generate: (captions, num_per_caption, seed) -> uint8 [len, num_per_caption, H, W, 3].
        history: the run's per-epoch logs (history.json), or None.
    """

    path: pathlib.Path
    kind: str
    config: Config
    generate: GenerateFn
    history: dict[str, list[float]] | None


def is_run_dir(path: str | os.PathLike) -> bool:
    """A training run directory (has config.json), as opposed to a SavedModel export."""
    return (pathlib.Path(path) / "config.json").is_file()


def load_model_under_test(
    path: str | os.PathLike,
    dataset: str | None = None,
    data_dir: str | None = None,
    text_encoder: str | None = None,
    preset: str = "quickstart",
) -> ModelUnderTest:
    """Loads a run directory (through `load_run`) or a SavedModel (a version folder, or a base
    path: its newest version), telling them apart by the run's config.json.

    Args:
        path: the model.
        dataset, data_dir: the data to evaluate on (`DataConfig.dataset` / `data_dir`); default
            the run's, or the preset's for a SavedModel.
        text_encoder: the encoder that embeds the dataset's captions for R-precision; default the
            run's, or the preset's for a SavedModel (which carries its own for generation).
        preset: for a SavedModel, which carries no config: the preset whose data settings (split
            sizes, seed, sample captions) to evaluate on, with the image size read from the
            export. The default is the one the main job exports.
    """
    path = pathlib.Path(path)
    if is_run_dir(path):
        gan, config = load_run(path)
        encoder = TextEncoder(config.text_encoder)

        def generate(captions, num_per_caption, seed):
            return generate_images(gan, encoder, list(captions), num_per_caption, seed)

        history_file = path / "history.json"
        history = json.loads(history_file.read_text()) if history_file.exists() else None
        kind = "run"
    else:
        model = export.load_saved_model(path)

        def generate(captions, num_per_caption, seed):
            return export.generate_from_saved_model(model, list(captions), num_per_caption, seed)

        config = get_preset(preset)
        config.data.image_size = generate(["a flower"], 1, 0).shape[2]
        history, kind = None, "saved_model"
    data = {"dataset": dataset, "data_dir": data_dir}
    config.data = dataclasses.replace(
        config.data, **{k: v for k, v in data.items() if v is not None}
    )
    if text_encoder is not None:
        config.text_encoder = text_encoder
    return ModelUnderTest(path, kind, config, generate, history)


def generate_in_batches(
    generate: GenerateFn,
    captions: Sequence[str],
    num_per_caption: int,
    seed: int,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """`generate` over chunks of at most `batch_size` images; chunk k is seeded `seed + k`.

    Returns:
        uint8 [len(captions), num_per_caption, H, W, 3].
    """
    rows = max(1, batch_size // num_per_caption)
    starts = range(0, len(captions), rows)
    parts = [
        generate(list(captions[start : start + rows]), num_per_caption, seed + k)
        for k, start in enumerate(
            tqdm(starts, desc="generating", unit="batch", disable=not progress)
        )
    ]
    return np.concatenate(parts)


def evaluate(model: ModelUnderTest, out_dir: str | os.PathLike, options: EvaluationOptions) -> dict:
    """Measures `model` as the module docstring says; writes the images into `out_dir`.

    Returns:
        The report (what `report.json` holds): `model`, `dataset`, `options`, `fid`,
        `attributes` and `robustness` (None unless procedural flowers), `r_precision`,
        `diversity` and `images` (file names).
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config, o = model.config, options

    def say(message: str) -> None:
        if o.progress:
            tqdm.write(message)

    say(f"Loading the {config.data.dataset} train and test splits")
    encoder = TextEncoder(config.text_encoder)
    train = load_split(config, "train", encoder)
    test = load_split(config, "test", encoder)
    image_index, caption_index = sample_caption_pairs(test.caption_counts, o.num_samples, o.seed)
    captions = [str(c) for c in test.captions[image_index, caption_index]]
    real = test.images[image_index]  # the image each caption was written for

    say(f"Generating {o.num_samples} images for held-out captions")
    generated = generate_in_batches(model.generate, captions, 1, o.seed, o.batch_size, o.progress)[
        :, 0
    ]
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"the model draws {generated.shape[1:3]} images but the dataset holds "
            f"{real.shape[1:3]} ones: evaluate on data of the size it was trained at"
        )

    features = InceptionFeatures()
    report = {
        "model": {"path": str(model.path), "kind": model.kind},
        "dataset": dataclasses.asdict(config.data),
        "text_encoder": config.text_encoder,
        "num_test_images": len(test.images),
        "options": dataclasses.asdict(o),
        "fid": image_quality(train, test, generated, features, config, o),
        "attributes": None,
        "robustness": None,
        "r_precision": caption_retrieval(
            train, test, generated, real, image_index, caption_index, config, o
        ),
    }
    targets = None
    if config.data.dataset == "flowers":
        if o.progress:
            tqdm.write("Attribute classifier")
        settings = attributes.ClassifierSettings(
            config.data.image_size, config.data.seed, o.classifier_images, o.classifier_epochs
        )
        classifier = attributes.load_attribute_classifier(settings, verbose=2 if o.progress else 0)
        report["attributes"] = attribute_consistency(test, generated, real, captions, classifier, o)
        report["robustness"] = caption_robustness(model.generate, classifier, train, encoder, o)
        targets = attributes.caption_targets(captions)
    report["diversity"] = noise_diversity(model.generate, test, captions, targets, features, o)
    report["images"] = draw_samples(model, test, image_index, caption_index, out_dir, o)
    return report


def image_quality(
    train: CaptionedImages,
    test: CaptionedImages,
    generated: np.ndarray,
    features: InceptionFeatures,
    config: Config,
    options: EvaluationOptions,
) -> dict:
    """FID and KID of the generated images, and of as many real training images (the ceiling),
    against every real test image (whose features are cached)."""
    if options.progress:
        tqdm.write("Inception features (FID, KID)")
    reference = fid.cached_reference_statistics(
        cache_key(split_identity(config, "test")),
        lambda: features(test.images, progress=options.progress),
    )
    rng = np.random.default_rng(options.seed)
    count = min(len(generated), len(train.images))
    real_sample = train.images[np.sort(rng.choice(len(train.images), count, replace=False))]
    kid = {"kid_subsets": options.kid_subsets, "seed": options.seed}
    return {
        "generated": fid.feature_set_distances(
            reference.features, features(generated, progress=options.progress), **kid
        ),
        "real": fid.feature_set_distances(
            reference.features, features(real_sample, progress=options.progress), **kid
        ),
        "reference": "every image of the test split",
        "real_sample": "images of the train split, as many as generated (or all if fewer)",
    }


def attribute_consistency(
    test: CaptionedImages,
    generated: np.ndarray,
    real: np.ndarray,
    captions: Sequence[str],
    classifier: attributes.AttributeClassifier,
    options: EvaluationOptions,
) -> dict:
    """Attribute accuracy (procedural flowers) of generated vs real images for the same captions,
    the chance level, and the classifier's accuracy on every held-out real image."""
    targets = attributes.caption_targets(captions)
    truth = attributes.attribute_labels(test.attributes)
    return {
        "generated": attributes.attribute_accuracy(
            attributes.predict_attributes(classifier, generated), targets
        ),
        "real": attributes.attribute_accuracy(
            attributes.predict_attributes(classifier, real), targets
        ),
        "chance": attributes.chance_accuracy(targets),
        "num_captions_naming": attributes.named_counts(targets),
        "classifier_heldout_accuracy": attributes.attribute_accuracy(
            attributes.predict_attributes(classifier, test.images), truth
        ),
        "classifier": {
            "train_images": options.classifier_images,
            "epochs": options.classifier_epochs,
        },
    }


def caption_retrieval(
    train: CaptionedImages,
    test: CaptionedImages,
    generated: np.ndarray,
    real: np.ndarray,
    image_index: np.ndarray,
    caption_index: np.ndarray,
    config: Config,
    options: EvaluationOptions,
) -> dict:
    """R-precision of generated and of real images against the test split's captions."""
    if options.progress:
        tqdm.write("R-precision: image-caption matcher")
    matcher = r_precision.load_caption_matcher(
        # The matcher learns the caption embeddings too: another encoder needs another matcher.
        f"{split_identity(config, 'train')}-{encoder_identity(config.text_encoder)}",
        train,
        r_precision.MatcherSettings(
            epochs=options.matcher_epochs,
            batch_size=min(64, len(train.images)),
            flip=config.data.flip,
        ),
        verbose=2 if options.progress else 0,
    )
    valid = np.arange(test.captions.shape[1]) < test.caption_counts[:, None]
    pool_index = np.cumsum(valid.ravel()).reshape(valid.shape) - 1
    pool = {
        "true_captions": pool_index[image_index, caption_index],
        "caption_codes": matcher.encode_captions(test.embeddings[valid]),
        "caption_owners": np.nonzero(valid)[0],
        "caption_keys": test.captions[valid].astype(str),
        "num_candidates": options.num_candidates,
        "repeats": options.r_precision_repeats,
        "seed": options.seed,
    }
    return {
        "generated": r_precision.r_precision(matcher.encode_images(generated), **pool),
        "real": r_precision.r_precision(matcher.encode_images(real), **pool),
        "matcher": {"train_images": len(train.images), "epochs": options.matcher_epochs},
    }


def caption_robustness(
    generate: GenerateFn,
    classifier: attributes.AttributeClassifier,
    train: CaptionedImages,
    encoder: TextEncoder,
    options: EvaluationOptions,
) -> dict:
    """Attribute accuracy on the held-out paraphrases and translations (`metrics.robustness`),
    with the text encoder's nearest-training-caption ceiling beside it."""
    if options.progress:
        tqdm.write("Caption robustness: paraphrases and translations")
    rows = robustness.load_caption_set()

    def generate_batched(captions, per_caption, seed):
        return generate_in_batches(generate, captions, per_caption, seed, options.batch_size)

    report = robustness.caption_robustness(
        generate_batched, classifier, rows, options.robustness_samples, options.seed
    )
    valid = np.arange(train.captions.shape[1]) < train.caption_counts[:, None]
    report["encoder_ceiling"] = robustness.encoder_ceiling(
        embed_captions([r["text"] for r in rows], encoder, cache_root=False, progress=False),
        rows,
        train.embeddings[valid],
        train.captions[valid].astype(str),
    )
    return report


def noise_diversity(
    generate: GenerateFn,
    test: CaptionedImages,
    captions: Sequence[str],
    targets: dict[str, np.ndarray] | None,
    features: InceptionFeatures,
    options: EvaluationOptions,
) -> dict:
    """Within-caption diversity of generated vs real images (`metrics.diversity`): real images
    fitting each caption's named attributes on procedural flowers (`targets`), else any."""
    if options.progress:
        tqdm.write("Diversity: Inception distances between the samples of one caption")
    count = min(options.diversity_captions, len(captions))
    real_index = diversity.matching_real_images(
        {name: labels[:count] for name, labels in targets.items()} if targets else {},
        attributes.attribute_labels(test.attributes) if targets else None,
        len(test.images),
        options.diversity_samples,
        np.random.default_rng(options.seed),
        groups=count,
    )

    def generate_batched(caption_list, per_caption, seed):
        return generate_in_batches(generate, caption_list, per_caption, seed, options.batch_size)

    return diversity.caption_diversity(
        generate_batched, features, list(captions[:count]), test.images, real_index, options.seed
    )


def draw_samples(
    model: ModelUnderTest,
    test: CaptionedImages,
    image_index: np.ndarray,
    caption_index: np.ndarray,
    out_dir: pathlib.Path,
    options: EvaluationOptions,
) -> dict[str, str]:
    """Caption grids (held-out captions with their real image first; the run's fixed sample
    captions) and the run's training curves, as PNGs in `out_dir`; returns their file names."""
    rows = min(options.grid_captions, len(image_index))
    captions = [str(c) for c in test.captions[image_index[:rows], caption_index[:rows]]]
    samples = generate_in_batches(
        model.generate, captions, options.grid_samples, options.seed + 1, options.batch_size
    )
    real = test.images[image_index[:rows], None]
    images = {}
    images["held_out_captions"] = plots.save_caption_grid(
        np.concatenate([real, samples], axis=1),
        captions,
        out_dir / "samples_held_out.png",
        "held-out captions: the real image, then generated samples",
    ).name
    fixed = model.config.sample_captions
    if fixed:
        samples = generate_in_batches(
            model.generate, fixed, options.grid_samples, options.seed + 1, options.batch_size
        )
        images["sample_captions"] = plots.save_caption_grid(
            samples, list(fixed), out_dir / "samples_fixed.png", "sample captions"
        ).name
    if model.history:
        images["training_curves"] = plots.save_training_curves(
            model.history, out_dir / "training_curves.png"
        ).name
    return images


def run_evaluation(
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: EvaluationOptions,
    dataset: str | None = None,
    data_dir: str | None = None,
    text_encoder: str | None = None,
) -> dict:
    """Loads a model (`load_model_under_test`), evaluates it, writes the reports; returns it."""
    model = load_model_under_test(model_path, dataset, data_dir, text_encoder)
    report = evaluate(model, out_dir, options)
    write_report(report, out_dir)
    return report
