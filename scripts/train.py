"""Trains a text-to-image GAN (GAN-INT-CLS) from a named preset, with flags overriding its fields.

    .venv/bin/python scripts/train.py --preset quickstart --run-dir runs/quickstart
    .venv/bin/python scripts/train.py --preset flowers64 --train.batch_size 128 --train.loss hinge

Run the same command again to resume after a crash or a kill. On several machines, run it once per
machine with TF_CONFIG set (see the README); --strategy and --precision pick how it runs.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from t2i_keras import config as t2i_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quickstart", choices=sorted(t2i_config.PRESETS))
    parser.add_argument("--run-dir", default=None, help="default: runs/<preset>")
    parser.add_argument(
        "--export-dir", help="also export the trained model here (TF Serving base path)"
    )
    t2i_config.add_override_flags(parser)
    args = parser.parse_args()

    from t2i_keras.training.trainer import train

    config = t2i_config.apply_overrides(t2i_config.get_preset(args.preset), args)
    run_dir = args.run_dir or os.path.join("runs", args.preset)
    train(config, run_dir, export_dir=args.export_dir)


if __name__ == "__main__":
    main()
