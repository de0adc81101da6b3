"""The procedural flowers as a TFDS builder: `tfds.load("procedural_flowers/64")` works offline.

Importing this module registers the builder. Nothing is downloaded: `_split_generators` draws the
flowers with `t2i_keras.data.flowers`, deterministically, so every machine builds the same data.

    import t2i_keras.data.flowers_tfds  # registers "procedural_flowers"
    ds = tfds.load("procedural_flowers/64", split="train", data_dir="/tmp/tfds")
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from t2i_keras.data import flowers


@dataclasses.dataclass
class ProceduralFlowersConfig(tfds.core.BuilderConfig):
    """Resolution and split sizes of one variant."""

    image_size: int = 64
    num_train: int = 8000
    num_test: int = 1000
    seed: int = 0


class ProceduralFlowers(tfds.core.GeneratorBasedBuilder):
    """Procedural captioned flowers (images, 10 captions each, ground-truth attributes)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        ProceduralFlowersConfig(name=str(size), image_size=size, description=f"{size}x{size}")
        for size in (32, 64, 128, 256)
    ] + [
        ProceduralFlowersConfig(
            name="tiny", image_size=32, num_train=32, num_test=8, description="for smoke tests"
        )
    ]
    DEFAULT_CONFIG_NAME = "64"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        attributes = {
            "petal_colour": tfds.features.ClassLabel(names=flowers.PETAL_COLOURS),
            "centre_colour": tfds.features.ClassLabel(names=flowers.CENTRE_COLOURS),
            "petal_count": tfds.features.Scalar(dtype=np.int32),
            "petal_shape": tfds.features.ClassLabel(names=flowers.PETAL_SHAPES),
            "size": tfds.features.ClassLabel(names=flowers.SIZES),
            "background": tfds.features.ClassLabel(names=flowers.BACKGROUNDS),
        }
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    "captions": tfds.features.Sequence(tfds.features.Text(), length=10),
                    "class_id": tfds.features.ClassLabel(names=flowers.PETAL_COLOURS),
                    "id": tfds.features.Text(),
                    **attributes,
                }
            ),
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train),
            "test": self._generate_examples("test", config.num_test),
        }

    def _generate_examples(self, split: str, count: int):
        config = self.builder_config
        examples = flowers.generate_examples(count, config.image_size, config.seed, split)
        for i in range(count):
            example = {key: examples[key][i] for key in ("image", "class_id", "id")}
            example["captions"] = [str(c) for c in examples["captions"][i]]
            for key in flowers.ATTRIBUTE_KEYS:
                example[key] = int(examples[key][i])
            yield str(examples["id"][i]), example
