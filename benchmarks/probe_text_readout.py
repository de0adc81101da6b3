"""Diagnostic: how much of a paraphrase's or translation's petal colour can any read-out of the
frozen caption embedding recover, when it is fit on the procedural template captions only?

A generator conditioned on USE learns a map from the training captions' embeddings to images;
on the held-out paraphrases and translations it can at best name the colour that a read-out of the
embedding fit on those captions names. Four read-outs, each fit on the training split's template
captions and scored on the caption-robustness set (`t2i_keras/metrics/caption_robustness.json`):
the nearest training caption (cosine, what `t2i-keras evaluate` reports as the encoder ceiling),
the nearest colour centroid, and a linear softmax classifier on the raw, the centred and the
per-dimension whitened embeddings (the generator's `--model.embedding_normalization` choices).

    .venv/bin/python benchmarks/probe_text_readout.py [--num-train 4000]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from t2i_keras.data.flowers import PETAL_COLOURS, generate_examples  # noqa: E402
from t2i_keras.metrics.robustness import caption_set_targets, load_caption_set  # noqa: E402
from t2i_keras.text.embeddings import embed_captions  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_softmax(features: np.ndarray, labels: np.ndarray, steps: int = 300) -> np.ndarray:
    """A linear softmax classifier (Adam, light L2), returned as an [D + 1, K] weight matrix
    whose last row is the bias."""
    x = tf.constant(np.concatenate([features, np.ones((len(features), 1))], 1), tf.float32)
    weights = tf.Variable(tf.zeros((x.shape[1], len(PETAL_COLOURS))))
    optimizer = tf.keras.optimizers.Adam(0.01)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            logits = x @ weights
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            ) + 1e-4 * tf.reduce_sum(weights[:-1] ** 2)
        optimizer.apply_gradients([(tape.gradient(loss, weights), weights)])
    return weights.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=4000, help="training flowers (seed 0)")
    args = parser.parse_args()

    train = generate_examples(args.num_train, 32, seed=0, split="train")
    captions, first = np.unique(train["captions"].astype(str).reshape(-1), return_index=True)
    labels = np.repeat(train["petal_colour"], train["captions"].shape[1])[first]
    rows = load_caption_set()
    target = caption_set_targets(rows)["petal_colour"]
    train_embeddings = embed_captions(list(captions), cache_root=False)
    query = embed_captions([r["text"] for r in rows], cache_root=False, progress=False)

    mean, std = train_embeddings.mean(0), train_embeddings.std(0)
    centroids = np.stack([unit(train_embeddings[labels == c]).mean(0) for c in range(8)])
    predictions = {
        "nearest training caption": labels[np.argmax(unit(query) @ unit(train_embeddings).T, 1)],
        "nearest colour centroid": np.argmax(unit(query) @ unit(centroids).T, 1),
    }
    fit_accuracy = {}
    for name, shift, scale in (
        ("linear, raw", 0.0, 1.0),
        ("linear, centred", mean, 1.0),
        ("linear, whitened", mean, std),
    ):
        weights = fit_softmax((train_embeddings - shift) / scale, labels)
        predict = lambda e, w=weights, s=shift, c=scale: ((e - s) / c) @ w[:-1] + w[-1]  # noqa: E731
        fit_accuracy[name] = float((predict(train_embeddings).argmax(1) == labels).mean())
        predictions[name] = predict(query).argmax(1)

    languages = np.array([r["language"] for r in rows])
    kinds = np.array([r["kind"] for r in rows])
    groups = {"all": np.ones(len(rows), bool)}
    groups.update({kind: kinds == kind for kind in sorted(set(kinds))})
    groups.update({lang: languages == lang for lang in sorted(set(languages))})
    print(
        f"{len(captions)} distinct training captions, {len(rows)} robustness captions; "
        "petal-colour accuracy of each read-out"
    )
    print("| read-out | fit on training | " + " | ".join(groups) + " |")
    print("|---|---:|" + "---:|" * len(groups))
    for name, predicted in predictions.items():
        right = predicted == target
        cells = " | ".join(f"{100 * right[keep].mean():.0f}%" for keep in groups.values())
        fit = f"{100 * fit_accuracy[name]:.1f}%" if name in fit_accuracy else ""
        print(f"| {name} | {fit} | {cells} |")


if __name__ == "__main__":
    main()
