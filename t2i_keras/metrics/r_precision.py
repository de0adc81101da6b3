"""R-precision: can a generated image's own caption be picked out of 100 by image-text matching?

AttnGAN (Xu et al. 2018, §5.1) scores text-image consistency by retrieval: for each generated
image, its caption and 99 captions drawn at random from other images are ranked by the cosine
similarity between the image's and each caption's encodings (the DAMSM encoders, §3.3), and
R-precision with R = 1 is the fraction of images whose own caption comes first. Chance is 1/100.

DAMSM pairs an Inception-v3 with a bi-LSTM trained on the dataset. Our captions are embedded by the
Universal Sentence Encoder, which stays frozen here as in the GAN; a small CNN image encoder and a
two-layer caption projection are trained to match them with the symmetric InfoNCE loss of CLIP
(Radford et al. 2021, with its learned temperature; van den Oord et al. 2018 for InfoNCE): in a
batch of B images, each with one of its captions, the B matching pairs are the positives among
B x B. The same score on real held-out images is the ceiling: captions that name little ("this is a
red flower") fit many images, so even real images fall short of 1.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from t2i_keras.data.pipeline import training_dataset
from t2i_keras.data.splits import CaptionedImages
from t2i_keras.utils.files import cache_dir, cache_key, save_model_atomically

NUM_CANDIDATES = 100  # AttnGAN's: the true caption and 99 mismatched ones
# Bump when the architecture or the training recipe changes, so stale cached matchers are not
# reused.
FORMAT_VERSION = 1
_MAX_LOGIT_SCALE = 100.0  # CLIP clips the learned scale here to keep training stable
_DTYPE = "float32"  # the verdicts must not depend on a run's mixed-precision policy
_LAYOUT = "channels_last"  # nor on Keras' global image_data_format (~/.keras/keras.json)


@keras.saving.register_keras_serializable(package="t2i_keras")
class CaptionMatcher(keras.Model):
    """Encodes images and (frozen) caption embeddings into one space where matches are close.

    Calling it on `(images, embeddings)` (float images [B, S, S, 3] in [-1, 1], embeddings [B, D])
    gives the B x B logits of the contrastive loss: scaled cosine similarities, row i the image i.
    `encode_images` and `encode_captions` give unit vectors for retrieval.

    Args:
        image_size: int. Side of the square images.
        embedding_dim: int. Size of the caption embeddings (512 for USE).
        projection_dim: int, default 128. Size of the shared space.
        filters: int, default 32. Width of the image encoder's first block.
        temperature: float, default 0.07. Initial softmax temperature (CLIP's); learned.
        seed: int, default 0. Seeds the initializers.

    Example:
        matcher = CaptionMatcher(64, 512)
        matcher.compile(optimizer=keras.optimizers.Adam(1e-3))
        matcher.fit(contrastive_dataset(images, embeddings, counts, batch_size=64),
                    epochs=10, steps_per_epoch=len(images) // 64)
        similarity = matcher.encode_images(uint8_images) @ matcher.encode_captions(embeddings).T
    """

    def __init__(
        self,
        image_size: int,
        embedding_dim: int,
        projection_dim: int = 128,
        filters: int = 32,
        temperature: float = 0.07,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        if not 1 / _MAX_LOGIT_SCALE <= temperature <= 1:
            raise ValueError(f"temperature must be in [0.01, 1], got {temperature}")
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.projection_dim = projection_dim
        self.filters = filters
        self.temperature = temperature
        self.seed = seed
        self.image_encoder = _image_encoder(image_size, projection_dim, filters, seed)
        self.caption_encoder = _caption_encoder(embedding_dim, projection_dim, seed + 1)
        self.log_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(1 / temperature)),
            name="log_scale",
            dtype=_DTYPE,
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, inputs, training=False):
        images, embeddings = inputs
        image_codes = self.image_encoder(images, training=training)
        caption_codes = self.caption_encoder(embeddings, training=training)
        return tf.exp(self.log_scale) * tf.matmul(image_codes, caption_codes, transpose_b=True)

    def train_step(self, data):
        images, embeddings = data
        with tf.GradientTape() as tape:
            loss = symmetric_contrastive_loss(self((images, embeddings), training=True))
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.log_scale.assign(tf.clip_by_value(self.log_scale, 0.0, math.log(_MAX_LOGIT_SCALE)))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result(), "temperature": tf.exp(-self.log_scale)}

    def encode_images(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 images [N, S, S, 3] -> unit vectors float32 [N, projection_dim]."""
        images = np.asarray(images)
        expected = (self.image_size, self.image_size, 3)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"expected uint8 images [N, {self.image_size}, {self.image_size}, 3], got "
                f"{images.dtype} {images.shape}"
            )
        return self._encode(self.image_encoder, images.astype(np.float32) / 127.5 - 1.0, batch_size)

    def encode_captions(self, embeddings: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Caption embeddings [N, D] -> unit vectors float32 [N, projection_dim]."""
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"expected caption embeddings [N, {self.embedding_dim}], got {embeddings.shape}"
            )
        return self._encode(self.caption_encoder, embeddings, batch_size)

    def _encode(self, encoder: keras.Model, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        parts = [
            np.asarray(encoder(inputs[start : start + batch_size], training=False))
            for start in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.projection_dim), np.float32)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "embedding_dim": self.embedding_dim,
            "projection_dim": self.projection_dim,
            "filters": self.filters,
            "temperature": self.temperature,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _image_encoder(image_size: int, projection_dim: int, filters: int, seed: int) -> keras.Model:
    """A DCGAN-discriminator-like CNN (Radford et al. 2016): strided 4x4 convolutions with batch
    norm and leaky ReLU down to 4x4, a global average, a linear projection, unit length."""
    seeds = iter(range(seed * 1000, seed * 1000 + 1000))
    images = keras.Input((image_size, image_size, 3), name="images", dtype=_DTYPE)
    x, width, size = images, filters, image_size
    while size > 4:
        x = layers.Conv2D(
            width,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.HeUniform(seed=next(seeds)),
            data_format=_LAYOUT,
            dtype=_DTYPE,
        )(x)
        x = layers.BatchNormalization(dtype=_DTYPE)(x)
        x = layers.LeakyReLU(0.2, dtype=_DTYPE)(x)
        width, size = min(2 * width, 8 * filters), size // 2
    x = layers.Conv2D(
        width,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=keras.initializers.HeUniform(seed=next(seeds)),
        data_format=_LAYOUT,
        dtype=_DTYPE,
    )(x)
    x = layers.GlobalAveragePooling2D(data_format=_LAYOUT, dtype=_DTYPE)(x)
    x = layers.Dense(
        projection_dim,
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
        dtype=_DTYPE,
    )(x)
    codes = layers.UnitNormalization(dtype=_DTYPE)(x)
    return keras.Model(images, codes, name="image_encoder")


def _caption_encoder(embedding_dim: int, projection_dim: int, seed: int) -> keras.Model:
    """A two-layer projection of the frozen caption embeddings, unit length: USE places captions
    by overall meaning, and the projection learns to weigh the words that show in an image."""
    embeddings = keras.Input((embedding_dim,), name="embeddings", dtype=_DTYPE)
    x = layers.Dense(
        2 * projection_dim,
        "relu",
        kernel_initializer=keras.initializers.HeUniform(seed=seed * 1000),
        dtype=_DTYPE,
    )(embeddings)
    x = layers.Dense(
        projection_dim,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 1000 + 1),
        dtype=_DTYPE,
    )(x)
    codes = layers.UnitNormalization(dtype=_DTYPE)(x)
    return keras.Model(embeddings, codes, name="caption_encoder")


def symmetric_contrastive_loss(logits: tf.Tensor) -> tf.Tensor:
    """CLIP's loss on B x B logits whose diagonal holds the matching pairs: the mean of the
    image->caption and caption->image cross-entropies (each an InfoNCE over the batch)."""
    labels = tf.range(tf.shape(logits)[0])
    image_to_caption = keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True
    )
    caption_to_image = keras.losses.sparse_categorical_crossentropy(
        labels, tf.transpose(logits), from_logits=True
    )
    return (tf.reduce_mean(image_to_caption) + tf.reduce_mean(caption_to_image)) / 2


def contrastive_dataset(
    images: np.ndarray,
    embeddings: np.ndarray,
    caption_counts: np.ndarray,
    batch_size: int = 64,
    seed: int = 0,
    flip: bool = True,
) -> tf.data.Dataset:
    """Endless shuffled batches of (float images [B, S, S, 3] in [-1, 1], embeddings [B, D]).

    Each image appears once per epoch with one of its real captions sampled afresh: the GAN's own
    stream (`t2i_keras.data.pipeline.training_dataset`) without its GAN pairs. So no batch holds
    two captions of one image: a false negative would push matching pairs apart.
    """
    batches = training_dataset(
        images,
        embeddings,
        np.zeros(len(images), np.int32),  # class ids only serve the GAN pairs, left out here
        batch_size,
        seed=seed,
        flip=flip,
        caption_counts=caption_counts,
        gan_pairs=False,
    )
    return batches.map(lambda batch: (batch["image"], batch["embedding"]))


@dataclasses.dataclass(frozen=True)
class MatcherSettings:
    """How a `CaptionMatcher` is trained: everything besides the data that its weights depend on.

    Args:
        epochs: passes over the training images.
        batch_size: a batch of 64 gives each positive 63 negatives per direction.
        projection_dim, filters: the matcher's size (see `CaptionMatcher`).
        flip: mirror images at random (off for datasets whose captions say left or right).
        seed: seeds the initialization and the data order.
    """

    epochs: int = 20
    batch_size: int = 64
    projection_dim: int = 128
    filters: int = 32
    flip: bool = True
    seed: int = 0

    def key(self) -> str:
        return (
            f"e{self.epochs}-b{self.batch_size}-p{self.projection_dim}-f{self.filters}"
            f"-flip{int(self.flip)}-seed{self.seed}"
        )


def train_caption_matcher(
    split: CaptionedImages, settings: MatcherSettings = MatcherSettings(), verbose: int | str = 0
) -> CaptionMatcher:
    """Trains a `CaptionMatcher` on a training split's uint8 images [N, S, S, 3], caption
    embeddings [N, C, D] (padded past each image's count) and caption counts int [N].

    Adam at 1e-3 with cosine decay.
    """
    s = settings
    images, embeddings = np.asarray(split.images), np.asarray(split.embeddings, np.float32)
    caption_counts = split.caption_counts
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
        raise ValueError(f"expected square uint8 images [N, S, S, 3], got {images.shape}")
    if embeddings.ndim != 3 or len(embeddings) != len(images):
        raise ValueError(
            f"expected caption embeddings [N={len(images)}, C, D], got {embeddings.shape}"
        )
    matcher = CaptionMatcher(
        images.shape[1], embeddings.shape[-1], s.projection_dim, s.filters, seed=s.seed
    )
    steps_per_epoch = len(images) // s.batch_size
    matcher.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(1e-3, s.epochs * steps_per_epoch)
        )
    )
    matcher.fit(
        contrastive_dataset(images, embeddings, caption_counts, s.batch_size, s.seed, s.flip),
        epochs=s.epochs,
        steps_per_epoch=steps_per_epoch,
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself, by seed
    )
    return matcher


def load_caption_matcher(
    dataset_identity: str,
    split: CaptionedImages,
    settings: MatcherSettings = MatcherSettings(),
    verbose: int | str = 0,
) -> CaptionMatcher:
    """The matcher for this training split from the cache, trained (and cached) on first use.

    `dataset_identity` must name everything the training data depends on (dataset, split, image
    size, sizes, the text encoder); the cache key adds the settings and `FORMAT_VERSION`. Stored
    atomically as `cache_dir("caption_matchers")/<files.cache_key>.keras`.
    """
    key = cache_key(dataset_identity, settings.key(), f"v{FORMAT_VERSION}")
    path = cache_dir("caption_matchers") / f"{key}.keras"
    if path.exists():
        return keras.saving.load_model(path, compile=False)
    matcher = train_caption_matcher(split, settings, verbose)
    save_model_atomically(matcher, path)
    return matcher


def r_precision(
    image_codes: np.ndarray,
    true_captions: np.ndarray,
    caption_codes: np.ndarray,
    caption_owners: np.ndarray,
    caption_keys: np.ndarray | None = None,
    num_candidates: int = NUM_CANDIDATES,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Top-1 R-precision (AttnGAN) of encoded images against a pool of encoded captions.

    Args:
        image_codes: unit vectors [M, P] of the images (generated or real).
        true_captions: int [M], each image's own caption, as an index into the pool.
        caption_codes: unit vectors [K, P], the pool of captions.
        caption_owners: int [K], the image each pool caption belongs to; the distractors of an
            image are drawn from the captions of other images.
        caption_keys: [K] caption texts (or any ids), or None. A distractor with the same key as
            the true caption is the same sentence: it ties, and the image scores 1/(1 + ties),
            the expectation of breaking the tie at random.
        num_candidates: the true caption plus num_candidates - 1 distractors (100 in AttnGAN).
        repeats: distractors are redrawn this many times (seeded); mean and std are over repeats.
        seed: seeds the distractors.

    Returns:
        {"top1_mean", "top1_std", "chance", "num_images", "num_candidates", "repeats"}.
    """
    image_codes, caption_codes = np.asarray(image_codes), np.asarray(caption_codes)
    true_captions, caption_owners = np.asarray(true_captions), np.asarray(caption_owners)
    if len(image_codes) != len(true_captions) or len(caption_codes) != len(caption_owners):
        raise ValueError(
            f"{len(image_codes)} images but {len(true_captions)} true captions, or "
            f"{len(caption_codes)} pool captions but {len(caption_owners)} owners"
        )
    if repeats < 1 or num_candidates < 2:
        raise ValueError(
            f"need repeats >= 1 and num_candidates >= 2, got {repeats}, {num_candidates}"
        )
    if caption_keys is None:
        caption_keys = np.arange(len(caption_codes))
    _, key_ids = np.unique(np.asarray(caption_keys), return_inverse=True)
    owners = caption_owners[true_captions]
    _, owner_ids, owned = np.unique(caption_owners, return_inverse=True, return_counts=True)
    own_counts = owned[owner_ids[true_captions]]
    fewest_others = len(caption_owners) - own_counts.max()
    if fewest_others < num_candidates - 1:
        raise ValueError(
            f"R-precision with {num_candidates} candidates needs {num_candidates - 1} captions of "
            f"other images, but the pool offers only {fewest_others}: use more held-out images"
        )
    true_scores = np.sum(image_codes * caption_codes[true_captions], axis=1)
    rng = np.random.default_rng(seed)
    per_repeat = []
    for _ in range(repeats):
        hits = np.empty(len(image_codes))
        for i, owner in enumerate(owners):
            # A uniform draw of (n + own) pool captions holds at least n of other images, and its
            # first n of those are a uniform draw from them: no per-image pool to build.
            size = num_candidates - 1 + own_counts[i]
            drawn = rng.choice(len(caption_owners), size, replace=False)
            distractors = drawn[caption_owners[drawn] != owner][: num_candidates - 1]
            scores = caption_codes[distractors] @ image_codes[i]
            same_sentence = key_ids[distractors] == key_ids[true_captions[i]]
            beaten = np.any((scores > true_scores[i]) & ~same_sentence)
            hits[i] = 0.0 if beaten else 1.0 / (1 + np.sum(same_sentence))
        per_repeat.append(hits.mean())
    return {
        "top1_mean": float(np.mean(per_repeat)),
        "top1_std": float(np.std(per_repeat)),
        "chance": 1.0 / num_candidates,
        "num_images": len(image_codes),
        "num_candidates": num_candidates,
        "repeats": repeats,
    }
