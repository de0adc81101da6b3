"""Evaluating a trained generator: the metrics runner and the report writer."""
