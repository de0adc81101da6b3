"""`t2i-keras prepare`: a real dataset decoded, resized and embedded once into the cache."""

from __future__ import annotations

import argparse
import json

from t2i_keras.cli.checks import UsageError
from t2i_keras.data import prepared


def run(args: argparse.Namespace) -> int:
    try:
        result = prepared.prepare_dataset(
            args.dataset,
            args.data_dir,
            args.split,
            args.image_size,
            encoder=args.text_encoder,
            resize_policy=args.resize_policy,
            cache_root=args.cache_root,
            max_captions=args.max_captions,
        )
    except (FileNotFoundError, ValueError) as error:  # the readers' messages say what to do
        raise UsageError(str(error)) from None
    meta = result.meta
    print(
        f"{'Reused' if result.reused else 'Prepared'} {meta['num_examples']} images, "
        f"{meta['num_captions']} captions (at most {meta['max_captions']} per image), "
        f"{len(meta['class_names'])} groups, {meta['image_size']}x{meta['image_size']}"
    )
    counts = json.loads(result.report_path.read_text())["counts"]
    print("Problems: " + (", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"))
    print(f"Report: {result.report_path}")
    print(f"Prepared data: {result.path}")
    return 0
