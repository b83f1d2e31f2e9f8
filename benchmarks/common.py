"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this
folder is on ``sys.path``)."""

import numpy as np


def full_length_tokens(rng, batch, length):
    """A token dict of random word-piece ids, every row ``length`` tokens long (no
    padding), so every row of a timed step costs the same."""
    ids = rng.integers(1000, 30000, size=(batch, length)).astype("int32")
    return {"token_ids": ids, "padding_mask": np.ones_like(ids)}
