"""A training callback that measures the generator every few epochs: FID, KID, attribute accuracy.

Losses of a GAN say little about the images (the generator's falls as often as it rises), so runs
are compared by sample quality measured during training, as StyleGAN's and BigGAN's training loops
do with FID. Inception costs about a second per dozen images on a CPU, so the callback measures a
small fixed set (default 64 held-out captions, fixed noise) every `every_epochs` epochs: the values
are biased upwards against `t2i_keras.evaluation.runner`'s larger samples but comparable between
epochs and runs of one setting.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from t2i_keras.data.splits import CaptionedImages, sample_caption_pairs
from t2i_keras.metrics import attributes, fid
from t2i_keras.metrics.inception import InceptionFeatures
from t2i_keras.utils.sampling import seeded_noise, to_uint8


class GenerationMetrics(keras.callbacks.Callback):
    """Every `every_epochs` epochs, FID/KID and (procedural flowers) attribute accuracy of the EMA
    generator on fixed held-out captions with fixed noise.

    Values are added to the epoch's `logs` as `fid`, `kid` and `attributes_<name>` (including
    `attributes_all_named`), so callbacks after this one (TrainingCurves' history.json, Keras'
    History and TensorBoard) record them, and are written with `tf.summary` under `log_dir`. As
    with Keras' `validation_freq`, the keys appear only on epochs that measure (epochs K, 2K, ...),
    so history lists of these keys hold one value per measurement.

    Args:
        captions: the held-out captions, one generated image each.
        embeddings: float32 [N, D], their embeddings.
        real_images: uint8 [M, H, W, 3], the real held-out images FID compares against.
        every_epochs: int, default 5. Measure after epochs K, 2K, ...
        attribute_classifier: an `attributes.AttributeClassifier` for the generator's image size,
            or None to skip attribute accuracy (datasets without attribute labels).
        log_dir: TensorBoard folder, or None.
        kid_subsets: int, default 20. Subsets KID averages over.
        batch_size: int, default 64. Images per generator call.
        seed: int, default 0. Seeds the fixed noise.
        features: an `InceptionFeatures` to reuse (or any callable from uint8 images [N, H, W, 3]
            to features [N, D]); an `InceptionFeatures` is built at the first measurement if None.

    Example:
        callback = GenerationMetrics.from_split(test_split, num_samples=64, every_epochs=5,
                                                log_dir=run_dir / "logs" / "metrics")
        gan.fit(dataset, epochs=50, callbacks=[callback, TrainingCurves(run_dir)])
    """

    def __init__(
        self,
        captions: Sequence[str],
        embeddings: np.ndarray,
        real_images: np.ndarray,
        every_epochs: int = 5,
        attribute_classifier: keras.Model | None = None,
        log_dir: str | pathlib.Path | None = None,
        kid_subsets: int = 20,
        batch_size: int = 64,
        seed: int = 0,
        features: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        super().__init__()
        if every_epochs < 1:
            raise ValueError(f"every_epochs must be at least 1, got {every_epochs}")
        if len(captions) != len(embeddings) or len(captions) < 2 or len(real_images) < 2:
            raise ValueError(
                f"need one embedding per caption and >= 2 of each for FID, got "
                f"{len(captions)} captions, {len(embeddings)} embeddings, "
                f"{len(real_images)} real images"
            )
        self.captions = list(captions)
        self.embeddings = np.asarray(embeddings, np.float32)
        self.real_images = np.asarray(real_images)
        self.every_epochs = every_epochs
        self.attribute_classifier = attribute_classifier
        self.targets = attributes.caption_targets(self.captions) if attribute_classifier else None
        self.kid_subsets = kid_subsets
        self.batch_size = batch_size
        self.seed = seed
        self.features = features
        self.real_features = None
        self.writer = tf.summary.create_file_writer(str(log_dir)) if log_dir else None
        self.started = None  # set when training first begins (a resumed fit keeps it)

    @classmethod
    def from_split(
        cls,
        split: CaptionedImages,
        num_samples: int = 64,
        seed: int = 0,
        **kwargs,
    ) -> GenerationMetrics:
        """Measures on `num_samples` (image, caption) pairs of a held-out split: generated images
        for the captions against the pairs' real images (`sample_caption_pairs`, seeded)."""
        image_index, caption_index = sample_caption_pairs(split.caption_counts, num_samples, seed)
        return cls(
            [str(c) for c in split.captions[image_index, caption_index]],
            split.embeddings[image_index, caption_index],
            split.images[np.unique(image_index)],
            seed=seed,
            **kwargs,
        )

    def generate(self) -> np.ndarray:
        """uint8 [N, H, W, 3]: the EMA generator's images for the captions, with the fixed noise."""
        noise = seeded_noise(self.seed, len(self.embeddings), self.model.generator.z_dim)
        parts = [
            to_uint8(
                self.model.generate(
                    self.embeddings[start : start + self.batch_size],
                    noise[start : start + self.batch_size],
                )
            )
            for start in range(0, len(self.embeddings), self.batch_size)
        ]
        return np.concatenate(parts)

    def measure(self) -> dict[str, float]:
        """The metrics of the generator now, keyed as they are logged."""
        if self.features is None:
            self.features = InceptionFeatures()
        if self.real_features is None:
            self.real_features = self.features(self.real_images)
        images = self.generate()
        distances = fid.feature_set_distances(
            self.real_features,
            self.features(images),
            kid_subsets=self.kid_subsets,
            seed=self.seed,
        )
        values = {"fid": distances["fid"], "kid": distances["kid_mean"]}
        if self.attribute_classifier is not None:
            predicted = attributes.predict_attributes(self.attribute_classifier, images)
            accuracy = attributes.attribute_accuracy(predicted, self.targets)
            values.update({f"attributes_{name}": value for name, value in accuracy.items()})
        return values

    def on_train_begin(self, logs=None):
        if self.started is None:
            self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs:
            return
        values = self.measure()
        # Wall-clock minutes since this process started training (measurements included), for
        # metrics-against-time plots; a resumed run counts from its own start.
        values["measured_minutes"] = (time.perf_counter() - self.started) / 60
        if logs is not None:
            logs.update(values)
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in values.items():
                    tf.summary.scalar(name, value, step=epoch + 1)
            self.writer.flush()
