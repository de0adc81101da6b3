"""Benchmark: which configuration draws what its caption says? One table, one command.

Trains each named variant of the quickstart preset for the same number of optimizer steps, one
after another (never two at once: they would share the 2 cores), evaluates each with the same
`t2i_keras.evaluation` run that `scripts/evaluate.py` makes, and prints a Markdown table: FID,
every attribute, the paraphrase/translation set, R-precision, diversity, the training minutes
and the step time measured in its own run. A row whose run directory already holds a
`report.json` is read, not retrained, so a table can be extended a row at a time.

    .venv/bin/python benchmarks/compare_configs.py --out runs/compare [--epochs 20]
        [--num-samples 500] [--only reed recipe]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

from machine import cpu_description  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Each variant: flags on top of the quickstart preset, and what it changes. The rows measured
# before the quickstart gained patch realism, then the contrastive term, turn them off, so that
# they still train what they did.
BEFORE_CONTRASTIVE = ["--train.contrastive_weight", "0"]
BEFORE_PATCH = BEFORE_CONTRASTIVE + ["--model.patch_realism", "false"]
DFGAN_TRAINING = [
    "--model.embedding_normalization", "centre",
    "--train.ma_gp_weight", "2",
    "--train.generator_lr", "1e-4",
    "--train.discriminator_lr", "4e-4",
    "--train.beta_1", "0.0",
    "--train.beta_2", "0.9",
]  # fmt: skip
RECIPE = BEFORE_PATCH + DFGAN_TRAINING + [
    "--model.spectral_norm", "false",
    "--train.embedding_noise", "0.2",
]  # fmt: skip


def bottleneck(dims: int, noise: float) -> list[str]:
    return ["--model.text_bottleneck_dim", str(dims), "--model.text_bottleneck_noise", str(noise)]


VARIANTS = {
    "reed": (
        BEFORE_PATCH,
        "the quickstart before patch realism: DCGAN, hinge, spectral-norm projection D, whitened "
        "text",
    ),
    "mode-seeking": (
        [*BEFORE_PATCH, "--train.mode_seeking_weight", "1"],
        "the quickstart plus MSGAN's mode-seeking term (λ = 1)",
    ),
    "uncond": (
        [*BEFORE_PATCH, "--model.unconditional_loss", "true"],
        "the quickstart plus StackGAN++'s unconditional realism loss",
    ),
    "text-bottleneck": (
        [*BEFORE_PATCH, *bottleneck(16, 1.0)],
        "the quickstart with the caption read through 16 noisy dimensions",
    ),
    "text-bottleneck-16-0.5": (
        [*BEFORE_PATCH, *bottleneck(16, 0.5)],
        "the text bottleneck at half the noise",
    ),
    "text-bottleneck-32-0.5": (
        [*BEFORE_PATCH, *bottleneck(32, 0.5)],
        "a 32-dimension text bottleneck at half the noise",
    ),
    "bn-bce": (
        [*BEFORE_PATCH, "--model.spectral_norm", "false", "--train.loss", "bce"],
        "the quickstart with Reed's batch-norm discriminator and cross-entropy",
    ),
    "patch": (
        BEFORE_CONTRASTIVE,
        "reed plus a caption-blind realism logit per 8x8 patch (PatchGAN)",
    ),
    "patch-ttur": (
        BEFORE_CONTRASTIVE
        + ["--train.discriminator_lr", "8e-4", "--train.beta_1", "0.0", "--train.beta_2", "0.9"],
        "patch with the discriminator learning 4x faster (8e-4), betas (0, 0.9)",
    ),
    "patch-contrastive": (
        ["--train.contrastive_weight", "1"],
        "patch plus XMC-GAN's image-to-caption contrastive term at λ = 1, in D and G",
    ),
    "patch-contrastive-0.6": (
        ["--train.contrastive_weight", "0.6"],
        "patch plus the contrastive term at λ = 0.6",
    ),
    "patch-contrastive-0.3": (
        [],
        "the quickstart: patch plus the contrastive term at λ = 0.3",
    ),
    "patch-bn-bce": (
        [*BEFORE_CONTRASTIVE, "--model.spectral_norm", "false", "--train.loss", "bce"],
        "patch realism on Reed's batch-norm discriminator with cross-entropy",
    ),
    "recipe": (
        RECIPE,
        "DF-GAN's recipe on the DCGAN networks: no SN, MA-GP, TTUR (G 1e-4, D 4e-4), "
        "betas (0, 0.9); centred text, LAFITE perturbation 0.2",
    ),
    "recipe+uncond": (
        RECIPE + ["--model.unconditional_loss", "true"],
        "the recipe plus StackGAN++'s unconditional realism loss",
    ),
    "dfgan": (
        BEFORE_PATCH + DFGAN_TRAINING + [
            "--model.architecture", "dfgan",
            "--model.generator_filters", "8",
            "--model.discriminator_filters", "8",
        ],
        "deep-fusion generator + residual one-way D (nf = 8), DF-GAN's recipe",
    ),
}  # fmt: skip


def train_and_evaluate(name: str, args) -> dict:
    run_dir = pathlib.Path(args.out) / name
    report_file = run_dir / "evaluation" / "report.json"
    if not report_file.exists():
        flags, _ = VARIANTS[name]
        command = [
            sys.executable, "scripts/train.py", "--preset", "quickstart",
            "--run-dir", str(run_dir), "--train.epochs", str(args.epochs), *flags,
        ]  # fmt: skip
        subprocess.run(command, check=True)
        from t2i_keras.evaluation.runner import EvaluationOptions, run_evaluation

        options = EvaluationOptions(num_samples=args.num_samples, progress=False)
        run_evaluation(run_dir, run_dir / "evaluation", options)
    report = json.loads(report_file.read_text())
    timing = json.loads((run_dir / "timing.json").read_text())
    return {"report": report, "timing": timing}


def table(rows: dict) -> str:
    header = (
        "| config | steps | train min | s/step | FID (real) | petal colour | centre | count | shape"
        " | all named | robust petal colour | worst language | R-prec top-1 | diversity ratio |"
    )
    lines = [header, "|---" + "|---:" * 14 + "|"]
    for name, row in rows.items():
        r, t = row["report"], row["timing"]
        gen = r["attributes"]["generated"]
        robust = r["robustness"]
        worst = min(robust["by_language"].items(), key=lambda kv: kv[1]["petal_colour"])
        lines.append(
            f"| {name} | {t['steps']} | {t['seconds'] / 60:.1f} | {t['seconds_per_step']:.2f} "
            f"| {r['fid']['generated']['fid']:.0f} ({r['fid']['real']['fid']:.0f}) "
            f"| {gen['petal_colour']:.0%} | {gen['centre_colour']:.0%} | {gen['petal_count']:.0%} "
            f"| {gen['petal_shape']:.0%} | {gen['all_named']:.0%} "
            f"| {robust['overall']['petal_colour']:.0%} "
            f"| {worst[0]} {worst[1]['petal_colour']:.0%} "
            f"| {r['r_precision']['generated']['top1_mean']:.0%} "
            f"| {r['diversity']['ratio']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a folder for one run directory per row")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    rows = {name: train_and_evaluate(name, args) for name in args.only}
    print(f"Machine: {cpu_description()}")
    print(table(rows))
    for name in args.only:
        print(f"- {name}: {VARIANTS[name][1]}")


if __name__ == "__main__":
    main()
