"""`t2i-keras embed`: captions through the text encoder, and their cosine-similarity matrix."""

from __future__ import annotations

import argparse

from t2i_keras.text.embeddings import embed_captions
from t2i_keras.text.encoder import TextEncoder


def run(args: argparse.Namespace) -> int:
    vectors = embed_captions(
        args.captions, TextEncoder(args.encoder), cache_root=False, progress=False
    )
    similarity = vectors @ vectors.T
    width = max(len(c) for c in args.captions)
    for i, caption in enumerate(args.captions):
        print(f"{caption:<{width}} " + " ".join(f"{s:5.2f}" for s in similarity[i]))
    return 0
