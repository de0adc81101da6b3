"""Generates images for captions from a trained run or an exported SavedModel; saves a grid PNG.

    .venv/bin/python scripts/generate.py --run runs/quickstart \
        "a flower with red round petals and a yellow centre" --num 8 --seed 0 --out grid.png
    # the newest version of an export:
    .venv/bin/python scripts/generate.py --model saved_models/flowers "a pink flower"
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captions", nargs="+")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run directory written by scripts/train.py")
    source.add_argument("--model", help="an export: base path (newest version) or version folder")
    parser.add_argument("--num", type=int, default=8, help="images per caption")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="grid.png")
    args = parser.parse_args()

    from t2i_keras.utils.plots import save_caption_grid

    if args.model:
        from t2i_keras.serving.export import generate_from_saved_model, load_saved_model

        images = generate_from_saved_model(
            load_saved_model(args.model), args.captions, args.num, args.seed
        )
    else:
        from t2i_keras.text.encoder import TextEncoder
        from t2i_keras.training.runs import generate_images, load_run

        gan, config = load_run(args.run)
        images = generate_images(
            gan, TextEncoder(config.text_encoder), args.captions, args.num, args.seed
        )
    print(f"Wrote {save_caption_grid(images, args.captions, args.out)}")


if __name__ == "__main__":
    main()
