"""`t2i-keras generate`: a caption x sample grid PNG from a run or an export."""

from __future__ import annotations

import argparse
import re

import tensorflow as tf

from t2i_keras.cli.checks import UsageError
from t2i_keras.serving.export import generate_from_saved_model, load_saved_model
from t2i_keras.text.encoder import TextEncoder
from t2i_keras.training.runs import generate_images, load_run
from t2i_keras.utils.plots import save_caption_grid


def run(args: argparse.Namespace) -> int:
    if args.model:
        model = load_saved_model(args.model)
        try:
            images = generate_from_saved_model(model, args.captions, args.num, args.seed)
        except tf.errors.InvalidArgumentError as error:
            limit = re.search(r"the maximum batch is (\d+)", error.message)
            if not limit:
                raise
            raise UsageError(
                f"{len(args.captions)} caption(s) x --num {args.num} = "
                f"{len(args.captions) * args.num} images, but this export draws at most "
                f"{limit.group(1)} per call: lower --num, or pass fewer captions"
            ) from None
    else:
        gan, config = load_run(args.run)
        images = generate_images(
            gan, TextEncoder(config.text_encoder), args.captions, args.num, args.seed
        )
    print(f"Wrote {save_caption_grid(images, args.captions, args.out)}")
    return 0
