"""Asks a generator behind TensorFlow Serving for images (REST or gRPC) and saves them as a grid.

    .venv/bin/python scripts/serve_client.py --rest http://localhost:8501 --model flowers \
        "a flower with pink petals" "a yellow flower" --num 4 --out served.png
    .venv/bin/python scripts/serve_client.py --grpc localhost:8500 --model flowers "a red flower"
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captions", nargs="+")
    server = parser.add_mutually_exclusive_group(required=True)
    server.add_argument("--rest", help="REST base URL, e.g. http://localhost:8501")
    server.add_argument("--grpc", help="gRPC target, e.g. localhost:8500")
    parser.add_argument("--model", required=True, help="the model name in models.config")
    parser.add_argument("--version", type=int, help="a version (default: the newest served)")
    parser.add_argument(
        "--format", choices=["row", "columnar"], default="row", help="REST body format"
    )
    parser.add_argument("--num", type=int, default=4, help="images per caption")
    parser.add_argument("--seed", type=int, help="send seeded noise (generate_with_noise)")
    parser.add_argument(
        "--z-dim", type=int, default=100, help="the model's noise size (with --seed)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--out", default="served.png", help="the grid PNG")
    args = parser.parse_args()

    from t2i_keras.serving import client as serving
    from t2i_keras.utils.plots import save_caption_grid

    if args.rest:
        client = serving.RestClient(args.rest, args.model, args.version, args.timeout, args.format)
    else:
        client = serving.GrpcClient(args.grpc, args.model, args.version, args.timeout)
    try:
        images = serving.request_images(client, args.captions, args.num, args.seed, args.z_dim)
    except serving.ServingError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Wrote {save_caption_grid(images, args.captions, args.out)}")


if __name__ == "__main__":
    main()
