"""The tiny towers and random token batches the tests share.

One place for them, so that a test reads as what it checks: ``tiny_spec(dropout=0.1)``
is a one-layer, 16-wide transformer with a 64-token vocabulary; ``contrastive_batch``
the batch form ``DualEncoder.fit`` takes, with the hard cases SamToNe must mask
(a duplicate query, a duplicate positive, a hard negative that is another row's
positive) when asked."""

import numpy as np

from samtone_tf.models import SmallTransformer

TINY = dict(vocab_size=64, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
            max_length=16, dropout=0.0)


def tiny_spec(**overrides):
    """A ``SmallTransformer`` (random weights, fast) with :data:`TINY`'s sizes, any of
    them overridden."""
    return SmallTransformer(**{**TINY, **overrides})


def random_tokens(rng, shape, vocab=64, low=1, padded_tail=0):
    """{"token_ids", "padding_mask"} of ``shape`` ([rows, length] or [rows, k, length]):
    ids drawn in [low, vocab); the last ``padded_tail`` positions of each row are
    padding at random (mask 0, id 0)."""
    ids = rng.integers(low, vocab, size=shape).astype("int32")
    mask = np.ones(shape, "int32")
    if padded_tail:
        mask[..., -padded_tail:] = rng.integers(0, 2, size=tuple(shape[:-1]) + (padded_tail,))
    return {"token_ids": ids * mask, "padding_mask": mask}


def contrastive_batch(rng, rows, query_length, document_length, negatives=0, vocab=64,
                      padded_tail=0, duplicates=False):
    """One training batch: queries, documents, ``negatives`` hard negatives per row,
    and ids (queries 0.., documents 100.., hard negatives 1000..). ``duplicates``: the
    last query repeats the first's id, the last document the first's, and row 1's first
    hard negative is row 2's positive."""
    def tokens(*shape):
        return random_tokens(rng, shape, vocab=vocab, padded_tail=padded_tail)

    batch = {"query": tokens(rows, query_length), "document": tokens(rows, document_length),
             "query_ids": np.arange(rows) % (rows - 1) if duplicates else np.arange(rows),
             "document_ids": 100 + np.arange(rows)}
    if duplicates:
        batch["document_ids"][-1] = batch["document_ids"][0]
    if negatives:
        batch["hard_negatives"] = tokens(rows, negatives, document_length)
        batch["hard_negative_ids"] = 1000 + np.arange(rows * negatives).reshape(rows, negatives)
        if duplicates:
            batch["hard_negative_ids"][1, 0] = batch["document_ids"][2]
    return batch
