"""Data shipped inside the package."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def spm_model_path() -> str:
    """The shipped SentencePiece model (8k unigram pieces trained on SciFact)."""
    return os.path.join(HERE, "spm", "scifact_unigram_8k.model")


def scifact_path() -> str:
    """The shipped BEIR SciFact folder (corpus, queries, train and test qrels)."""
    return os.path.join(HERE, "scifact")
