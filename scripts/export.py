"""Exports a trained run as a TF Serving SavedModel: caption strings in, uint8 images out.

    .venv/bin/python scripts/export.py --run runs/quickstart --export-dir saved_models/flowers

writes saved_models/flowers/<next version>/ (EMA generator + USE encoder in one graph, four
signatures, warmup requests) and saved_models/flowers/models.config.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run directory written by scripts/train.py")
    parser.add_argument(
        "--export-dir", required=True, help="the model's base path, e.g. saved_models/flowers"
    )
    parser.add_argument("--version", type=int, help="integer version (default: the next free one)")
    parser.add_argument("--max-batch", type=int, default=256, help="largest request accepted")
    parser.add_argument("--name", help="model name in models.config (default: the folder name)")
    args = parser.parse_args()

    from t2i_keras.training.runs import export_run

    path = export_run(args.run, args.export_dir, args.version, args.max_batch, args.name)
    print(f"Exported {path}")


if __name__ == "__main__":
    main()
