"""Embeds captions with the text encoder and prints their cosine-similarity matrix.

.venv/bin/python scripts/embed.py "a pink flower" "a flower with pink petals" "a red bird"
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captions", nargs="+")
    parser.add_argument(
        "--encoder", default="builtin", help="'builtin', a SavedModel folder or a TF Hub handle"
    )
    args = parser.parse_args()

    from t2i_keras.text.embeddings import embed_captions
    from t2i_keras.text.encoder import TextEncoder

    vectors = embed_captions(
        args.captions, TextEncoder(args.encoder), cache_root=False, progress=False
    )
    similarity = vectors @ vectors.T
    width = max(len(c) for c in args.captions)
    for i, caption in enumerate(args.captions):
        print(f"{caption:<{width}} " + " ".join(f"{s:5.2f}" for s in similarity[i]))


if __name__ == "__main__":
    main()
