"""The signatures of a t2i_keras SavedModel and the one output each returns, without TensorFlow.

`export` writes exactly these; `client` (REST and gRPC, numpy only) reads them.
"""

SIGNATURE_OUTPUTS = {
    "serving_default": "images",
    "generate_with_noise": "images",
    "generate_from_embeddings": "images",
    "embed": "embeddings",
}
SIGNATURES = tuple(SIGNATURE_OUTPUTS)
