"""Petal-colour conditioning of a trained run on held-out procedural-flower captions.

    .venv/bin/python scripts/check_colour.py --run runs/quickstart [--per-colour 64]

Prints a Markdown table (generated vs real images, per colour) and writes colour_check.json.
"""

import argparse
import json
import pathlib

from t2i_keras.utils import quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--per-colour", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet.start_tensorflow()

    from t2i_keras.data import flowers
    from t2i_keras.metrics import colour
    from t2i_keras.text.encoder import TextEncoder
    from t2i_keras.training.runs import generate_images, load_run

    gan, config = load_run(args.run)
    encoder = TextEncoder(config.text_encoder)
    test = flowers.generate_examples(
        config.data.num_test, config.data.image_size, seed=config.data.seed, split="test"
    )

    def generate(captions, seed):
        return generate_images(gan, encoder, captions, num_per_caption=1, seed=seed)[:, 0]

    generated = colour.petal_colour_agreement(
        generate, test["captions"], test["petal_colour"], args.per_colour, args.seed
    )
    real = colour.agreement_by_colour(
        flowers.estimate_petal_colour(test["image"]), test["petal_colour"]
    )
    print(colour.format_table(generated, real))
    report = {"generated": generated, "real": real, "per_colour": args.per_colour}
    pathlib.Path(args.run, "colour_check.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
