"""An evaluation report written out: `report.json` as measured, and a readable `report.md`."""

from __future__ import annotations

import json
import os
import pathlib

from t2i_keras.metrics.attributes import ALL_NAMED
from t2i_keras.utils.files import atomic_write_bytes


def write_report(report: dict, out_dir: str | os.PathLike) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes `report.json` and `report.md` into `out_dir` (atomically); returns both paths."""
    out_dir = pathlib.Path(out_dir)
    json_path, markdown_path = out_dir / "report.json", out_dir / "report.md"
    atomic_write_bytes(json_path, (json.dumps(report, indent=2) + "\n").encode())
    atomic_write_bytes(markdown_path, format_markdown(report).encode())
    return json_path, markdown_path


def format_markdown(report: dict) -> str:
    """The report as Markdown: what was measured, tables with the ceilings, the images."""
    o, d = report["options"], report["dataset"]
    kind = "training run" if report["model"]["kind"] == "run" else "SavedModel"
    lines = [
        f"# Evaluation of `{report['model']['path']}`",
        "",
        (
            f"A {kind}, evaluated on the **{d['dataset']}** test split ({d['image_size']}x"
            f"{d['image_size']} px, {report['num_test_images']} held-out images): "
            f"{o['num_samples']} images were generated, one for each of {o['num_samples']} "
            f"held-out (image, caption) pairs (seed {o['seed']}). Each metric is shown next to its "
            "value on real images, the best a generator can do."
        ),
    ]
    lines += _fid_section(report["fid"], o)
    if report["attributes"] is not None:
        lines += _attribute_section(report["attributes"])
    lines += _r_precision_section(report["r_precision"])
    if report.get("robustness") is not None:
        lines += _robustness_section(report["robustness"], report["attributes"])
    if report.get("diversity") is not None:
        lines += _diversity_section(report["diversity"])
    titles = {
        "held_out_captions": "Held-out captions: the real image, then generated samples",
        "sample_captions": "Fixed sample captions (the config's)",
        "training_curves": "Training curves",
    }
    lines += ["", "## Samples"]
    for key, file_name in report["images"].items():
        if key == "training_curves":
            lines += ["", "## Training curves"]
        lines += ["", f"![{titles[key]}]({file_name})"]
    return "\n".join(lines) + "\n"


def _fid_section(results: dict, options: dict) -> list[str]:
    lines = [
        "",
        "## Image quality: FID and KID",
        "",
        (
            "Inception pool3 features of the 2015 graph (FID: Heusel et al. 2017; KID: Bińkowski "
            f"et al. 2018, mean ± std over {options['kid_subsets']} random subsets of up to 1000 "
            "images per set: with fewer images every subset is the whole set and the std is 0). "
            f"The reference is {results['reference']}; the real row uses "
            f"{results['real_sample']}. FID is biased upwards at small sample counts: compare FIDs "
            "only at equal counts."
        ),
        "",
        "| images | FID ↓ | KID × 1000 ↓ | images vs reference |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("generated", "generated"), ("real", "real (train split)")):
        r = results[name]
        lines.append(
            f"| {label} | {r['fid']:.2f} | {1000 * r['kid_mean']:.2f} ± {1000 * r['kid_std']:.2f} "
            f"| {r['num_generated']} vs {r['num_real']} |"
        )
    return lines


def _attribute_section(results: dict) -> list[str]:
    lines = [
        "",
        "## Text-image consistency: attribute accuracy",
        "",
        (
            "A CNN trained on the procedural flowers' ground truth "
            f"({results['classifier']['train_images']} training images, "
            f"{results['classifier']['epochs']} epochs) reads each image's attributes; an image "
            "is right on an attribute when it shows the value its caption names. *All named*: "
            "right on every attribute the caption names. The real column scores the real image "
            "each caption was written for."
        ),
        "",
        "| attribute | generated | real (ceiling) | chance | captions naming it |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in results["generated"]:
        label = "**all named**" if name == ALL_NAMED else name.replace("_", " ")
        lines.append(
            f"| {label} | {results['generated'][name]:.1%} | {results['real'][name]:.1%} "
            f"| {results['chance'][name]:.1%} | {results['num_captions_naming'][name]} |"
        )
    heldout = results["classifier_heldout_accuracy"]
    per_attribute = ", ".join(
        f"{name.replace('_', ' ')} {value:.1%}"
        for name, value in heldout.items()
        if name != ALL_NAMED
    )
    lines += [
        "",
        (
            f"The classifier on every held-out real image, against the ground truth: "
            f"{per_attribute} (all four: {heldout[ALL_NAMED]:.1%})."
        ),
    ]
    return lines


def _r_precision_section(results: dict) -> list[str]:
    g, r = results["generated"], results["real"]
    return [
        "",
        "## Text-image consistency: R-precision",
        "",
        (
            f"AttnGAN's R-precision (Xu et al. 2018): each image's own caption is ranked among "
            f"{g['num_candidates']} (itself and {g['num_candidates'] - 1} captions of other test "
            "images) by an image-caption matcher trained contrastively on the train split "
            f"({results['matcher']['train_images']} images, {results['matcher']['epochs']} "
            "epochs) against the frozen caption embeddings. Top-1, mean ± std over "
            f"{g['repeats']} draws of the distractors."
        ),
        "",
        "| images | top-1 R-precision | chance |",
        "|---|---:|---:|",
        f"| generated | {g['top1_mean']:.1%} ± {g['top1_std']:.1%} | {g['chance']:.0%} |",
        f"| real (ceiling) | {r['top1_mean']:.1%} ± {r['top1_std']:.1%} | {r['chance']:.0%} |",
    ]


def _accuracy_cells(scores: dict, names: list[str]) -> str:
    return " | ".join(f"{scores[n]:.1%}" if n in scores else "–" for n in names)


def _robustness_section(results: dict, template: dict | None) -> list[str]:
    names = [n for n in results["overall"] if n != ALL_NAMED] + [ALL_NAMED]
    header = " | ".join("**all named**" if n == ALL_NAMED else n.replace("_", " ") for n in names)
    counts = results["counts"]
    lines = [
        "",
        "## Caption robustness: paraphrases and translations",
        "",
        (
            f"{counts['overall']} hand-written captions the templates never produce "
            "(`t2i_keras/metrics/caption_robustness.json`, never trained on), "
            f"{results['samples_per_caption']} images each, scored by the same attribute "
            "classifier. Each accuracy counts only the captions that name the attribute."
        ),
        "",
        f"| captions | n | {header} |",
        "|---|---:|" + "---:|" * len(names),
    ]
    if template is not None:
        lines.append(
            f"| template captions (above) | {template['num_captions_naming'][ALL_NAMED]} | "
            f"{_accuracy_cells(template['generated'], names)} |"
        )
    lines.append(
        f"| all robustness captions | {counts['overall']} | "
        f"{_accuracy_cells(results['overall'], names)} |"
    )
    for kind, scores in results["by_kind"].items():
        lines.append(f"| {kind}s | {counts['by_kind'][kind]} | {_accuracy_cells(scores, names)} |")
    for language, scores in results["by_language"].items():
        lines.append(
            f"| {language} | {counts['by_language'][language]} | {_accuracy_cells(scores, names)} |"
        )
    ceiling = results.get("encoder_ceiling")
    if ceiling is not None:
        groups = {"all": ceiling["overall"], **ceiling["by_kind"], **ceiling["by_language"]}
        lines += [
            "",
            (
                "The text encoder's ceiling for petal colour: how often the training caption "
                "nearest to each of these captions (cosine of USE embeddings) names the same "
                "petal colour. A generator that has learnt the training captions perfectly draws "
                "at best this: " + ", ".join(f"{k} {v:.0%}" for k, v in groups.items()) + "."
            ),
        ]
    return lines


def _diversity_section(results: dict) -> list[str]:
    return [
        "",
        "## Diversity: different noise, different flowers",
        "",
        (
            f"Mean pairwise distance between the Inception pool features of "
            f"{results['samples_per_caption']} images drawn for one caption with different "
            f"noise, averaged over {results['captions']} held-out captions; the real column "
            "measures as many real held-out images showing what each caption names. A ratio "
            "near 1 varies as the data does; near 0 is one image per caption."
        ),
        "",
        "| generated | real | ratio |",
        "|---:|---:|---:|",
        f"| {results['generated']:.2f} | {results['real']:.2f} | {results['ratio']:.2f} |",
    ]
