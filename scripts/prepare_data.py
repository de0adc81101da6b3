"""Prepares a real captioned dataset once: decoded, resized, captions embedded, cached as TFRecords.

    .venv/bin/python scripts/prepare_data.py --dataset oxford102 --data-dir data/oxford102
    .venv/bin/python scripts/prepare_data.py --dataset cub --data-dir data/cub --resize-policy bbox
    .venv/bin/python scripts/prepare_data.py --dataset coco --data-dir ../shared/data/coco-mini \
        --image-size 32
    .venv/bin/python scripts/prepare_data.py --dataset folder --data-dir my_photos/captions.csv

Training reuses the result; running this again only rebuilds when the files or the encoder
changed. Problems in the data (corrupt images, missing captions, ...) are counted and listed in
the report JSON whose path is printed.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from t2i_keras.data import prepared
    from t2i_keras.data.kinds import REAL_DATASETS, RESIZE_POLICIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=REAL_DATASETS)
    parser.add_argument("--data-dir", required=True, help="the dataset folder (or CSV/JSONL)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--resize-policy", default="center_crop", choices=RESIZE_POLICIES)
    parser.add_argument("--max-captions", type=int, default=None)
    parser.add_argument(
        "--text-encoder",
        default="builtin",
        help="'builtin', a SavedModel folder or a TF Hub handle",
    )
    parser.add_argument("--cache-root", default=None, help="default: the t2i_keras cache")
    args = parser.parse_args()

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
    except (FileNotFoundError, ValueError) as error:  # the messages say what to do
        raise SystemExit(f"error: {error}") from None
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


if __name__ == "__main__":
    main()
