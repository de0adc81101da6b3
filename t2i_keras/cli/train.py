"""`t2i-keras train`: one run of a preset with the flags' overrides (`training.trainer.train`)."""

from __future__ import annotations

import argparse
import os

from t2i_keras.training.trainer import train


def run(args: argparse.Namespace) -> int:
    run_dir = args.run_dir or os.path.join("runs", args.preset)
    train(args.config, run_dir, export_dir=args.export_dir)
    return 0
