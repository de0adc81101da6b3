"""The real captioned datasets as TFDS builders, built from files downloaded by hand.

Importing this module registers `oxford_flowers_reed`, `cub_birds_reed` and
`coco_captions_manual` (TFDS's own `coco_captions` downloads COCO 2014 with Karpathy's splits;
this one reads the official files already on disk). None can download anything: the user places
the files in the manual folder as `MANUAL_DOWNLOAD_INSTRUCTIONS` says, and the builders read
them with the same readers and decoder as `prepared`, so bad files are skipped and logged.

    import t2i_keras.data.real_tfds  # registers the builders
    builder = tfds.builder("oxford_flowers_reed/64_center_crop", data_dir="/tmp/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/oxford102"))
    ds = builder.as_dataset(split="train")

Configs are named `<size>_<policy>` for sizes 32, 64, 128 and 256 and the policies that suit
the dataset ("bbox" for CUB, as StackGAN crops birds). Elements: `image` uint8 [S, S, 3],
`captions` tf.string [C] (C varies), `group` (the class, or the image itself for COCO) and `id`.
"""

from __future__ import annotations

import abc
import dataclasses
import pathlib
from typing import ClassVar

import tensorflow_datasets as tfds
from absl import logging

from t2i_keras.data import coco, images, reed
from t2i_keras.data.records import CaptionedSource
from t2i_keras.models.kinds import IMAGE_SIZES

_MANUAL_DIR_NOTE = (
    "Place the files in the manual folder: `DownloadConfig(manual_dir=...)`, or by default "
    "<data_dir>/downloads/manual/."
)


@dataclasses.dataclass
class RealImagesConfig(tfds.core.BuilderConfig):
    """Output resolution and resize policy of one variant."""

    image_size: int = 64
    resize_policy: str = "center_crop"


def _configs(policies: tuple[str, ...]) -> list[RealImagesConfig]:
    return [
        RealImagesConfig(
            name=f"{size}_{policy}",
            image_size=size,
            resize_policy=policy,
            description=f"{size}x{size}, resize policy {policy}",
        )
        for size in IMAGE_SIZES
        for policy in policies
    ]


class _ManualCaptionedImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """What the three builders share: features, decoding and reporting. Subclasses say which
    splits exist and how to read one."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First release."}

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    "captions": tfds.features.Sequence(tfds.features.Text()),
                    "group": tfds.features.Text(),
                    "id": tfds.features.Text(),
                }
            ),
            supervised_keys=None,
        )

    def _splits(self, manual_dir: pathlib.Path) -> dict[str, str]:
        """TFDS split name -> the reader's split name (Reed's layouts: train and test)."""
        return {"train": "train", "test": "test"}

    @abc.abstractmethod
    def _read(self, manual_dir: pathlib.Path, split: str) -> CaptionedSource:
        """The split's examples (see the readers in `reed` and `coco`)."""

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = pathlib.Path(dl_manager.manual_dir)
        return {
            name: self._generate_examples(manual_dir, split)
            for name, split in self._splits(manual_dir).items()
        }

    def _generate_examples(self, manual_dir: pathlib.Path, split: str):
        config = self.builder_config
        source = self._read(manual_dir, split)
        examples = source.examples
        for loaded in images.load_images(
            [e.image_path for e in examples],
            config.image_size,
            config.resize_policy,
            [e.box for e in examples],
        ):
            example = examples[loaded.index]
            if loaded.error is not None:
                source.report.add("corrupt_image", example.image_path, loaded.error)
                continue
            yield (
                example.id,
                {
                    "image": loaded.image,
                    "captions": example.captions,
                    "group": example.group,
                    "id": example.id,
                },
            )
        if source.report.issues:
            logging.warning(
                "%s split %r: problems in %s:\n%s",
                self.name,
                split,
                manual_dir,
                source.report.summary(),
            )


class OxfordFlowersReed(_ManualCaptionedImages):
    """Oxford-102 flowers with Reed et al.'s ten captions per image; train = trainval classes."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = reed.OXFORD102_INSTRUCTIONS + _MANUAL_DIR_NOTE
    BUILDER_CONFIGS = _configs(("center_crop", "pad"))
    DEFAULT_CONFIG_NAME = "64_center_crop"

    def _read(self, manual_dir: pathlib.Path, split: str) -> CaptionedSource:
        return reed.read_oxford102(manual_dir, split)


class CubBirdsReed(_ManualCaptionedImages):
    """CUB-200-2011 birds with Reed et al.'s ten captions per image; train = trainval classes."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = reed.CUB_INSTRUCTIONS + _MANUAL_DIR_NOTE
    BUILDER_CONFIGS = _configs(("bbox", "center_crop"))
    DEFAULT_CONFIG_NAME = "64_bbox"

    def _read(self, manual_dir: pathlib.Path, split: str) -> CaptionedSource:
        bounding_boxes = self.builder_config.resize_policy == "bbox"
        return reed.read_cub(manual_dir, split, bounding_boxes=bounding_boxes)


class CocoCaptionsManual(_ManualCaptionedImages):
    """COCO 2017 images with their human captions; "train" and "validation" as present."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = coco.coco_instructions("train2017") + _MANUAL_DIR_NOTE
    BUILDER_CONFIGS = _configs(("center_crop", "pad"))
    DEFAULT_CONFIG_NAME = "64_center_crop"

    def _splits(self, manual_dir: pathlib.Path) -> dict[str, str]:
        present = {
            name: split
            for name, split in (("train", "train2017"), ("validation", "val2017"))
            if (manual_dir / "annotations" / f"captions_{split}.json").is_file()
        }
        if not present:
            raise FileNotFoundError(
                f"No annotations/captions_train2017.json nor captions_val2017.json in "
                f"{manual_dir}.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        return present

    def _read(self, manual_dir: pathlib.Path, split: str) -> CaptionedSource:
        return coco.read_coco(manual_dir, split)
