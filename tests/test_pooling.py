"""Tower pooling (mean, cls, last_token) against NumPy on the encoder's own sequence."""

import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.layers.tower import POOLING_OPTIONS, Tower
from tests.helpers.builders import tiny_spec


@pytest.mark.parametrize("pooling", POOLING_OPTIONS)
def test_pooling_equals_numpy_on_the_sequence(pooling):
    spec = tiny_spec(max_length=8)
    tower = Tower(spec.make_token_embedding(), spec.make_encoder(), pooling=pooling)
    ids = np.array([[5, 6, 7, 8, 9, 10], [5, 6, 0, 0, 0, 0], [7, 0, 0, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0]], "int32")
    mask = (ids > 0).astype("int32")
    got = tower({"token_ids": ids, "padding_mask": mask}).numpy()
    sequence = tower.encoder(tower.token_embedding(ids), padding_mask=tf.cast(mask, bool))
    sequence = np.asarray(sequence, np.float64)
    lengths = mask.sum(axis=1)
    if pooling == "mean":
        want = (sequence * mask[:, :, None]).sum(axis=1) / np.maximum(lengths, 1)[:, None]
    elif pooling == "cls":
        want = sequence[:, 0]
    else:  # the last non-padding token; the first for an empty row
        want = sequence[np.arange(len(ids)), np.maximum(lengths - 1, 0)]
    want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)  # TF: eps 1e-24
    np.testing.assert_allclose(got, want, atol=1e-6)
    if pooling == "last_token":  # rows 0 and 1 pool different positions than cls
        assert not np.allclose(got[:2], sequence[:2, 0] / np.linalg.norm(
            sequence[:2, 0], axis=1, keepdims=True), atol=1e-3)
