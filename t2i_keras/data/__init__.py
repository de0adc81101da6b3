"""Datasets: each module builds one family of captioned-image examples."""
