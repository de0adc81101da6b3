"""`t2i-keras serve-client`: images from a model behind TF Serving, saved as a grid PNG."""

from __future__ import annotations

import argparse

from t2i_keras.cli.checks import UsageError
from t2i_keras.serving import client as serving
from t2i_keras.utils.plots import save_caption_grid


def run(args: argparse.Namespace) -> int:
    if args.rest:
        client = serving.RestClient(args.rest, args.name, args.version, args.timeout, args.format)
    else:
        client = serving.GrpcClient(args.grpc, args.name, args.version, args.timeout)
    try:
        images = serving.request_images(client, args.captions, args.num, args.seed, args.z_dim)
    except serving.ServingError as error:
        raise UsageError(str(error)) from None
    print(f"Wrote {save_caption_grid(images, args.captions, args.out)}")
    return 0
