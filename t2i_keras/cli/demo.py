"""`t2i-keras demo`: the demo page (`t2i_keras.demo`) for an export, a run or a TF Serving model."""

from __future__ import annotations

import argparse

from t2i_keras.cli.checks import UsageError
from t2i_keras.demo.models import RestSource, RunSource, SavedModelSource
from t2i_keras.demo.server import DemoServer
from t2i_keras.serving.client import ServingError


def run(args: argparse.Namespace) -> int:
    if args.model:
        source = SavedModelSource(args.model)
    elif args.run:
        source = RunSource(args.run)
    else:
        try:
            source = RestSource(args.rest, args.name, args.version, args.z_dim, args.timeout)
        except ServingError as error:
            raise UsageError(f"{error} (start TF Serving first; see the README)") from None
    try:
        server = DemoServer(
            (args.host, args.port),
            source,
            max_captions=args.max_captions,
            max_images=args.max_images,
        )
    except OSError as error:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port} ({error.strerror}): pick another --port"
        ) from None
    info = source.info
    print(f"Model {info.name}, version {info.version}, {info.image_size}x{info.image_size} images")
    print(f"Demo at {server.url} (Ctrl+C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
