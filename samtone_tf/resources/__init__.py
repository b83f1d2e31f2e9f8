"""Data shipped inside the package."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def scifact_path() -> str:
    """The shipped BEIR SciFact folder (corpus, queries, train and test qrels)."""
    return os.path.join(HERE, "scifact")
