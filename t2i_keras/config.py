"""Typed run configuration: named presets, command-line overrides, and JSON round trips.

Every hyper-parameter lives here (tensorflow/models' pattern): a preset names a complete
configuration, flags override single fields (`--train.batch_size 32`), and the resolved config is
saved as `config.json` in the run directory so every run can be reproduced.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import typing
from typing import Any

# The lists below are owned by the modules that act on them; these imports load no TensorFlow.
from t2i_keras.data.kinds import DATASETS, REAL_DATASETS, RESIZE_POLICIES
from t2i_keras.models.kinds import (
    ARCHITECTURES,
    CONDITIONING_KINDS,
    IMAGE_SIZES,
    LOSS_KINDS,
    NORMALIZATION_MODES,
)

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")  # see t2i_keras.training.distribute
BIRD_CAPTIONS = (
    "this bird has a red crown and a short black beak",
    "a small yellow bird with black wings",
    "this bird is blue with white on its belly",
    "a large white bird with a long orange beak",
    "this bird has brown and white speckled feathers",
    "a black bird with a red patch on its wing",
    "this small bird has a grey head and a white throat",
    "a bright green bird with a curved bill",
)
COCO_CAPTIONS = (
    "a red double decker bus driving down a street",
    "a plate of food with broccoli and rice",
    "a man riding a wave on top of a surfboard",
    "a giraffe standing in a grassy field",
    "a living room with a couch and a television",
    "a group of people flying kites on a beach",
    "a train traveling down tracks next to a forest",
    "a cat sleeping on a bed",
)
SAMPLE_CAPTIONS = (
    "this flower has red petals and a yellow centre",
    "a flower with orange petals",
    "this flower has petals that are yellow and has a brown centre",
    "a green flower with thin petals",
    "this flower has blue round petals",
    "a purple flower with pointed petals and a white centre",
    "this flower has pink petals",
    "a white flower with five petals and a yellow centre",
)


@dataclasses.dataclass
class DataConfig:
    """What to train on.

    Args:
        dataset: "flowers" (the built-in procedural captioned flowers), or a real dataset read
            from `data_dir` (see t2i_keras.data.prepared): "oxford102" or "cub" (Reed et al.'s
            layouts), "coco", or "folder" (images with sidecar captions, or a CSV/JSONL table).
        data_dir: where a real dataset is.
        train_split / test_split: split names the dataset's reader knows (Reed: "train" is the
            train+val classes, "test" the held-out classes; COCO: "train", "val").
        resize_policy: "center_crop", "pad" or "bbox" (CUB's boxes enlarged 1.5x, StackGAN).
        max_captions: keep at most this many captions per image (0: all).
        image_size: side of the square images (16, 32, 64, 128 or 256).
        num_train: training images generated (procedural flowers only).
        num_test: held-out images generated for evaluation (procedural flowers only).
        seed: dataset seed; train and test splits derive disjoint seeds from it.
        flip: random horizontal flips (the captions of flowers and birds are mirror-invariant).
    """

    dataset: str = "flowers"
    data_dir: str = ""
    train_split: str = "train"
    test_split: str = "test"
    resize_policy: str = "center_crop"
    max_captions: int = 0
    image_size: int = 64
    num_train: int = 8000
    num_test: int = 1000
    seed: int = 0
    flip: bool = True


@dataclasses.dataclass
class ModelConfig:
    """Network sizes and options (Reed et al. 2016 §4 unless noted).

    Args:
        z_dim: noise size (100 in Reed).
        text_projection_dim: the text embedding is projected to this size (128 in Reed).
        generator_filters: ngf, filters of the last generator block (64 in DCGAN).
        discriminator_filters: ndf, filters of the first discriminator block.
        conditioning_augmentation: StackGAN's CA on the text projection (Zhang et al. 2017).
        spectral_norm: spectral normalization in the discriminator (Miyato et al. 2018).
        discriminator_conditioning: "concat" (Reed) or "projection" (Miyato & Koyama 2018).
        architecture: "dcgan" (Reed's GAN-INT-CLS networks) or "dfgan" (deep text fusion in
            every generator block and a residual one-way discriminator, Tao et al. 2022).
        embedding_normalization: "whiten" (per-dimension) or "centre" (one common scale, keeping
            the encoder's geometry); see t2i_keras.conditioning.
        unconditional_loss: also train the projection discriminator's caption-blind logit on
            real vs fake (StackGAN++'s joint conditional and unconditional loss).
        text_bottleneck_dim: dcgan only; 0 is off. The generator reads the caption through a
            noisy channel of this many dimensions (`Generator`), so it cannot tell which training
            image a caption came from and must use z.
        text_bottleneck_noise: the std of that channel's noise.
        patch_realism: dcgan only. The discriminator also judges realism, caption-blind, on
            each cell of its 8x8 feature map (PatchGAN), trained real vs fake like the
            unconditional loss.
    """

    z_dim: int = 100
    text_projection_dim: int = 128
    generator_filters: int = 64
    discriminator_filters: int = 64
    conditioning_augmentation: bool = False
    spectral_norm: bool = False
    discriminator_conditioning: str = "concat"
    architecture: str = "dcgan"
    embedding_normalization: str = "whiten"
    unconditional_loss: bool = False
    text_bottleneck_dim: int = 0
    text_bottleneck_noise: float = 1.0
    patch_realism: bool = False


@dataclasses.dataclass
class TrainConfig:
    """Optimization (Reed: Adam 2e-4, beta1 0.5, batch 64, 600 epochs, lr halved every 100).

    Args:
        batch_size: the global batch size (split across replicas under tf.distribute).
        epochs: passes over the training images.
        steps_per_epoch: optimizer steps per epoch; 0 means one pass over the images.
        generator_lr / discriminator_lr: Adam learning rates.
        beta_1 / beta_2: Adam betas.
        lr_halve_every: halve both learning rates every this many epochs (0 disables).
        loss: "bce" (non-saturating, Reed) or "hinge".
        gan_int_beta: GAN-INT interpolation weight (Reed §4.3).
        gan_int_weight: weight of the interpolated-embedding generator term.
        ma_gp_weight: matching-aware gradient penalty weight (DF-GAN uses 2; 0 disables).
        embedding_noise: LAFITE's caption-embedding perturbation strength during training
            (t2i_keras.data.pairs.perturb_embeddings; 0 disables).
        kl_weight: weight of conditioning augmentation's KL term (StackGAN; with
            model.conditioning_augmentation only).
        mode_seeking_weight: weight of MSGAN's mode-seeking term (Mao et al. 2019), which makes
            different noise draw different images for one caption (0 disables it).
        ema_decay: decay of the generator weights' moving average used for samples and export.
        contrastive_weight: weight of XMC-GAN's image-to-caption contrastive term in both losses
            (model.discriminator_conditioning projection only; 0 disables it).
        precision: "auto" (bf16 where the hardware has it, else float32), "float32",
            "mixed_bfloat16" or "mixed_float16" (with loss scaling).
        jit_compile: XLA-compile the train step (single device only).
        strategy: "auto", "default", "mirrored" or "multi_worker" (see
            t2i_keras.training.distribute).
        backup_every: steps between fault-tolerance backups (0: only at epoch ends).
        eval_every: compute FID/KID (and attribute accuracy on procedural flowers) every this many
            epochs on held-out captions, logged to TensorBoard and history (0: off).
        eval_samples: generated images per such evaluation.
        seed: seeds the networks' initialization and the train step's randomness.
    """

    batch_size: int = 64
    epochs: int = 600
    steps_per_epoch: int = 0
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    lr_halve_every: int = 100
    loss: str = "bce"
    gan_int_beta: float = 0.5
    gan_int_weight: float = 1.0
    ma_gp_weight: float = 0.0
    embedding_noise: float = 0.0
    kl_weight: float = 1.0
    mode_seeking_weight: float = 0.0
    ema_decay: float = 0.999
    contrastive_weight: float = 0.0
    precision: str = "auto"
    jit_compile: bool = False
    strategy: str = "auto"
    backup_every: int = 200
    eval_every: int = 0
    eval_samples: int = 64
    seed: int = 0


@dataclasses.dataclass
class Config:
    """A complete, reproducible training run.

    Args:
        preset: the name of the preset this config started from.
        text_encoder: "builtin", a SavedModel folder or a TF Hub handle.
        sample_captions: captions drawn in the per-epoch sample grid.
        samples_per_caption: images per caption in the sample grid.
    """

    preset: str = "custom"
    text_encoder: str = "builtin"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    sample_captions: tuple[str, ...] = SAMPLE_CAPTIONS
    samples_per_caption: int = 8

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        return _from_dict(cls, values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | pathlib.Path) -> None:
        pathlib.Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Config:
        return cls.from_dict(json.loads(pathlib.Path(path).read_text()))


def _from_dict(cls, values: dict[str, Any]):
    hints = typing.get_type_hints(cls)
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} fields {sorted(unknown)}")
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value, hint = values[field.name], hints[field.name]
        if dataclasses.is_dataclass(hint):
            value = _from_dict(hint, value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def _quickstart() -> Config:
    """CPU, under 10 minutes on 2 cores, enough to condition visibly on petal colour.

    32x32 images make a step ~5x cheaper than 64x64, so the matching-aware discriminator gets the
    few thousand steps it needs to learn which colour a caption names. Hinge loss with a
    spectral-norm projection discriminator (Miyato et al. 2018; Miyato & Koyama 2018) starts
    drawing flowers several times sooner than Reed's BCE + batch-norm discriminator here, and a
    caption-blind realism logit per 8x8 patch (PatchGAN) beat it without on FID, petal and
    centre colour and R-precision at equal steps. XMC-GAN's image-to-caption contrastive term
    at weight 0.3 then beat that on FID, centre colour, R-precision and the paraphrases and
    translations, at the same petal colour and diversity (weight 1 draws shapes better but
    loses petal colour and diversity). Of the other variants measured at 20 epochs (README,
    "What it draws"), none did better: DF-GAN's recipe, centred and perturbed captions, an
    unconditional realism loss, deep fusion, a text bottleneck, two timescales. 20 epochs score
    as 40 did, in half the time. FID and attribute accuracy are measured every 5 epochs on 64
    held-out captions (`metrics_over_time.png`).
    """
    return Config(
        preset="quickstart",
        data=DataConfig(image_size=32, num_train=4000, num_test=500),
        model=ModelConfig(
            generator_filters=32,
            discriminator_filters=32,
            spectral_norm=True,
            discriminator_conditioning="projection",
            patch_realism=True,
        ),
        train=TrainConfig(
            batch_size=64,
            epochs=20,
            lr_halve_every=0,
            loss="hinge",
            ema_decay=0.99,
            eval_every=5,
            eval_samples=64,
            contrastive_weight=0.3,
        ),
        samples_per_caption=6,
    )


def _quickstart_long() -> Config:
    """The quickstart for 100 epochs (6,200 steps), measured every 20 epochs on 128 held-out
    captions, to show what five times the steps buy. Measured on 2 cores: 0.38 s per step
    (39.6 minutes of steps, the cores shared at times); ten 200-caption measurements and the
    per-epoch sample grids took 12 more, so five measurements of 128 keep it under 45
    minutes. `t2i-keras evaluate --num-samples 500` against the quickstart's: FID 275.1
    (277.8), shape 53.0% (43.8%), all named 43.6% (41.4%), petal colour 98.6% (97.8%), count
    13.6% (17.4%); FID at 200 captions stayed at 286-300 from epoch 20 on."""
    config = _quickstart()
    config.preset = "quickstart_long"
    config.train.epochs, config.train.eval_every, config.train.eval_samples = 100, 20, 128
    return config


def _reed(dataset: str, data_dir: str, **data) -> Config:
    """Reed et al. 2016's 64x64 setting: Adam 2e-4 (beta1 0.5), batch 64, 600 epochs, learning
    rates halved every 100 epochs, BCE GAN-INT-CLS with the concatenation discriminator."""
    return Config(
        preset="",
        data=DataConfig(dataset=dataset, data_dir=data_dir, image_size=64, **data),
        train=TrainConfig(batch_size=64, epochs=600, lr_halve_every=100, loss="bce"),
    )


def _flowers64() -> Config:
    """Oxford-102 flowers with Reed's captions (zero-shot class split, trainval classes)."""
    config = _reed("oxford102", "data/oxford102")
    config.preset = "flowers64"
    return config


def _birds64() -> Config:
    """CUB-200-2011 with Reed's captions, cropped to the bounding box enlarged 1.5x (StackGAN)."""
    config = _reed("cub", "data/cub", resize_policy="bbox")
    config.preset = "birds64"
    config.sample_captions = BIRD_CAPTIONS
    return config


def _coco64() -> Config:
    """COCO 2014/2017 captions. Reed et al. train COCO for fewer passes (its 80k images give
    many more steps per epoch); 200 epochs, halved every 50, no flips (captions say left/right)."""
    config = _reed("coco", "data/coco", flip=False)
    config.preset = "coco64"
    config.data.test_split = "val"
    config.train.epochs, config.train.lr_halve_every = 200, 50
    config.sample_captions = COCO_CAPTIONS
    return config


def _dfgan(config: Config, preset: str) -> Config:
    """A Reed preset's data with DF-GAN's networks and recipe (Tao et al. 2022, §4 and their
    released configs): deep-fusion generator and residual one-way discriminator with nf = 32,
    hinge loss, MA-GP (k = 2, p = 6), Adam with betas (0.0, 0.9) and two timescales (G 1e-4,
    D 4e-4), batch 32, no decay; our centred caption embeddings (`t2i_keras.models.conditioning`).
    GAN-CLS's wrong pairs and GAN-INT stay. A GPU job: nothing of it was trained here at 64x64."""
    config.preset = preset
    config.model = dataclasses.replace(
        config.model,
        architecture="dfgan",
        generator_filters=32,
        discriminator_filters=32,
        embedding_normalization="centre",
    )
    config.train = dataclasses.replace(
        config.train,
        batch_size=32,
        loss="hinge",
        ma_gp_weight=2.0,
        generator_lr=1e-4,
        discriminator_lr=4e-4,
        beta_1=0.0,
        beta_2=0.9,
        lr_halve_every=0,
    )
    return config


def _procedural64() -> Config:
    """The built-in procedural flowers at full quality (Reed's 64x64 setting; a GPU job)."""
    return Config(preset="procedural64", data=DataConfig(num_train=8000, num_test=1000))


def _on_one_gpu(config: Config, preset: str) -> Config:
    """A preset's training with the device settings for one NVIDIA GPU (README, "On a GPU").

    The recipe stays; only how the step runs changes. `precision` "auto": bf16 on Ampere and
    later (compute capability 8.0+), float32 on older GPUs, where `--precision mixed_float16`
    (with loss scaling) is the user's choice. `jit_compile`: XLA can fuse the step's many small
    element-wise ops (batch norm, leaky ReLU, the EMA update of every generator weight) into
    fewer kernels. tests/training/test_trainer.py compiles and trains this preset a few steps
    with it on CPU, but no GPU has timed it; on CPUs its speed depends on the machine (half the
    speed on the AMX machine of the README's benchmarks, 1.39x on the AVX2 one), which is why
    the other presets leave it off. XLA is single-device here (the trainer
    refuses it under MirroredStrategy). `batch_size` stays the preset's global batch, Reed's 64:
    on N GPUs pass `--train.jit_compile false`, and keep 64 for the same training (synchronized
    batch norm makes N replicas at 64/N train like one device at 64) or raise it to 64·N, which
    is a different recipe.
    """
    config.preset = preset
    config.train.precision, config.train.jit_compile = "auto", True
    return config


PRESETS = {
    "quickstart": _quickstart,
    "quickstart_long": _quickstart_long,
    "dfgan_flowers64": lambda: _dfgan(_flowers64(), "dfgan_flowers64"),
    "dfgan_birds64": lambda: _dfgan(_birds64(), "dfgan_birds64"),
    "dfgan_coco64": lambda: _dfgan(_coco64(), "dfgan_coco64"),
    "procedural64": _procedural64,
    "procedural64_gpu": lambda: _on_one_gpu(_procedural64(), "procedural64_gpu"),
    "flowers64": _flowers64,
    "birds64": _birds64,
    "coco64": _coco64,
}


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


def add_override_flags(parser: argparse.ArgumentParser) -> None:
    """Adds one `--section.field` flag per config field (default None: keep the preset's)."""
    group = parser.add_argument_group("config overrides (default: the preset's value)")
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            sub_hints = typing.get_type_hints(hint)
            for sub in dataclasses.fields(hint):
                _add_flag(group, f"{field.name}.{sub.name}", sub_hints[sub.name])
        elif field.name != "preset":
            _add_flag(group, field.name, hint)


# Fields with a fixed set of values, and the short flags the README documents for them.
FIELD_CHOICES = {
    "train.precision": PRECISIONS,
    "train.strategy": STRATEGIES,
    "train.loss": LOSS_KINDS,
    "data.dataset": DATASETS,
    "data.resize_policy": RESIZE_POLICIES,
    "data.image_size": IMAGE_SIZES,
    "model.discriminator_conditioning": CONDITIONING_KINDS,
    "model.architecture": ARCHITECTURES,
    "model.embedding_normalization": NORMALIZATION_MODES,
}
FLAG_ALIASES = {"train.precision": "--precision", "train.strategy": "--strategy"}


def _add_flag(group, name: str, hint) -> None:
    flags = [f"--{name}"] + ([FLAG_ALIASES[name]] if name in FLAG_ALIASES else [])
    if hint is bool:
        group.add_argument(*flags, type=_parse_bool, default=None, metavar="{true,false}")
    elif typing.get_origin(hint) is tuple:
        group.add_argument(*flags, nargs="+", default=None)
    else:
        group.add_argument(*flags, type=hint, default=None, choices=FIELD_CHOICES.get(name))


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    """Returns a copy of `config` with every flag the user set applied."""
    values = config.to_dict()
    for name, value in vars(args).items():
        if value is None or ("." not in name and name not in values) or name == "preset":
            continue
        section, _, field = name.rpartition(".")
        (values[section] if section else values)[field] = value
    return Config.from_dict(values)


class ConfigError(ValueError):
    """A config field holds a value no run can use; the message names the flag and the fix."""


# Fields that must be at least 1; every other number must be at least 0, except the ones in
# _RANGES. Counts and sizes of 0 mean "off" or "all" where the field's docstring says so.
_POSITIVE = {
    "data.num_train",
    "data.num_test",
    "model.z_dim",
    "model.text_projection_dim",
    "model.generator_filters",
    "model.discriminator_filters",
    "train.batch_size",
    "train.epochs",
    "train.eval_samples",
    "train.generator_lr",
    "train.discriminator_lr",
    "samples_per_caption",
}
# (low, high, high included?): Adam's betas and the EMA decay are below 1, GAN-INT's beta is a
# mixing weight.
_RANGES = {
    "train.beta_1": (0.0, 1.0, False),
    "train.beta_2": (0.0, 1.0, False),
    "train.ema_decay": (0.0, 1.0, False),
    "train.gan_int_beta": (0.0, 1.0, True),
}


def config_problems(config: Config) -> list[str]:
    """Every problem of `config`, one sentence each naming the flag and what it accepts."""
    problems = []
    for name, value, hint in _fields(config):
        flag = f"--{name}"
        if name in FIELD_CHOICES:
            if value not in FIELD_CHOICES[name]:
                choices = ", ".join(str(c) for c in FIELD_CHOICES[name])
                problems.append(f"{flag} must be one of {choices}; got {value!r}")
        elif hint is bool:
            if not isinstance(value, bool):
                problems.append(f"{flag} must be true or false, got {value!r}")
        elif hint in (int, float):
            if isinstance(value, bool) or not isinstance(
                value, (int, float) if hint is float else int
            ):
                problems.append(
                    f"{flag} must be {'a number' if hint is float else 'an integer'}, got {value!r}"
                )
            elif value != value or value in (float("inf"), float("-inf")):
                problems.append(f"{flag} must be a finite number, got {value!r}")
            elif name in _RANGES:
                low, high, inclusive = _RANGES[name]
                if not (low <= value <= high if inclusive else low <= value < high):
                    bound = "]" if inclusive else ")"
                    problems.append(f"{flag} must be in [{low:g}, {high:g}{bound}, got {value!r}")
            elif name in _POSITIVE and value <= 0:
                problems.append(f"{flag} must be positive, got {value!r}")
            elif value < 0:
                problems.append(f"{flag} must be zero or positive, got {value!r}")
        elif typing.get_origin(hint) is tuple:
            if not value or not all(isinstance(v, str) and v.strip() for v in value):
                problems.append(f"{flag} needs at least one caption, and no empty one")
    if problems:
        return problems  # the checks below assume well-typed fields
    encoder = config.text_encoder
    if encoder.startswith(("/", ".", "~")) and not pathlib.Path(encoder).expanduser().is_dir():
        problems.append(
            f"--text_encoder {encoder} is not a folder: use 'builtin', a SavedModel folder or a "
            "TF Hub handle"
        )
    data, train = config.data, config.train
    if data.dataset in REAL_DATASETS:
        if not data.data_dir:
            problems.append(
                f"--data.dataset {data.dataset} reads from disk: set --data.data_dir to the "
                "folder that holds it"
            )
        elif not pathlib.Path(data.data_dir).exists():
            problems.append(
                f"--data.data_dir {data.data_dir} does not exist: point it at the {data.dataset} "
                "folder (README, 'Training on real data', lists the layout)"
            )
    if data.resize_policy == "bbox" and data.dataset != "cub":
        problems.append("--data.resize_policy bbox needs bounding boxes, which only cub has")
    if (
        data.dataset == "flowers"
        and train.steps_per_epoch == 0
        and train.batch_size > data.num_train
    ):
        problems.append(
            f"--train.batch_size {train.batch_size} is larger than --data.num_train "
            f"{data.num_train}: an epoch would have no step"
        )
    model = config.model
    if model.text_bottleneck_dim:
        if model.architecture != "dcgan":
            problems.append("--model.text_bottleneck_dim is for --model.architecture dcgan only")
        if model.text_bottleneck_dim >= model.z_dim:
            problems.append(
                f"--model.text_bottleneck_dim {model.text_bottleneck_dim} must be smaller than "
                f"--model.z_dim {model.z_dim}: its noise is taken from the noise vector"
            )
        if model.conditioning_augmentation:
            problems.append(
                "--model.text_bottleneck_dim and --model.conditioning_augmentation both add noise "
                "to the caption: choose one"
            )
    if model.patch_realism and model.architecture != "dcgan":
        problems.append("--model.patch_realism is for --model.architecture dcgan only")
    if model.patch_realism and model.unconditional_loss:
        problems.append(
            "--model.patch_realism and --model.unconditional_loss are two caption-blind realism "
            "losses: choose one"
        )
    if train.contrastive_weight and (
        model.architecture != "dcgan" or model.discriminator_conditioning != "projection"
    ):
        problems.append(
            "--train.contrastive_weight needs --model.architecture dcgan with "
            "--model.discriminator_conditioning projection (it compares phi(x) with W e)"
        )
    if train.contrastive_weight and train.ma_gp_weight:
        problems.append(
            "--train.contrastive_weight and --train.ma_gp_weight both take over the real images' "
            "pass through the discriminator: choose one"
        )
    if train.strategy == "multi_worker" and not os.environ.get("TF_CONFIG"):
        problems.append("--strategy multi_worker needs TF_CONFIG set (see the README)")
    return problems


def validate(config: Config) -> Config:
    """Returns `config` if every field is usable, else raises `ConfigError` listing the problems."""
    problems = config_problems(config)
    if problems:
        raise ConfigError("; ".join(problems))
    return config


def _fields(config: Config):
    """(dotted name, value, type hint) of every field but `preset` and `text_encoder`."""
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        hint, value = hints[field.name], getattr(config, field.name)
        if dataclasses.is_dataclass(hint):
            sub_hints = typing.get_type_hints(hint)
            for sub in dataclasses.fields(hint):
                yield f"{field.name}.{sub.name}", getattr(value, sub.name), sub_hints[sub.name]
        elif field.name not in ("preset", "text_encoder"):
            yield field.name, value, hint
