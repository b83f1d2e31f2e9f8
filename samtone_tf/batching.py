"""Length-sorted batching for encoding: similar lengths share a batch, so each batch
is padded only to its own longest row.

>>> import numpy as np
>>> [rows.tolist() for rows in length_sorted_batches(np.array([3, 9, 1, 7]), 2)]
[[1, 3], [0, 2]]
"""

from __future__ import annotations

import numpy as np


def length_sorted_batches(lengths, batch_size):
    """Yields index arrays of at most ``batch_size`` rows, longest rows first
    (stable: equal lengths keep their input order)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]
