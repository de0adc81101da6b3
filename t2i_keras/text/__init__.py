"""Captions to vectors: the built-in Universal Sentence Encoder, the Keras layer, the cache."""
