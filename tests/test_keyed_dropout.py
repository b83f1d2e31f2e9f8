"""Keyed dropout masks: the rate and scale of Keras' Dropout, and a row's mask depends on
its key (seed, step, side, global row, layer), not on the other rows of its call."""

import numpy as np
import tensorflow as tf

from samtone_tf.layers.keyed_dropout import KeyedDropout, dropout_keys


def _apply(rows, x, rate=0.1, step=3, side=1, seed=11):
    layer = KeyedDropout(rate)
    layer.layer_key = 42
    with dropout_keys(seed, tf.constant(step, tf.int64), tf.constant(rows, tf.int32), side):
        return layer(x, training=True).numpy()


def test_rate_and_scale_are_keras_dropouts():
    x = np.ones((64, 128, 128), "float32")
    out = _apply(np.arange(64), x)
    kept = out != 0
    assert abs(kept.mean() - 0.9) < 0.002  # 1M draws: the standard error is 0.0003
    np.testing.assert_allclose(out[kept], 1 / 0.9, rtol=1e-6)


def test_a_rows_mask_follows_its_key_not_its_neighbours():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 16)).astype("float32")
    whole = _apply(np.arange(8), x)
    np.testing.assert_array_equal(_apply(np.arange(4, 8), x[4:]), whole[4:])  # a chunk
    np.testing.assert_array_equal(_apply(np.arange(8)[::-1], x[::-1]), whole[::-1])
    for change in (dict(step=4), dict(side=2), dict(seed=12)):
        assert (( _apply(np.arange(8), x, **change) != 0) != (whole != 0)).mean() > 0.1, change


def test_outside_a_keyed_block_it_is_keras_dropout():
    layer = KeyedDropout(0.5, seed=1)
    out = layer(np.ones((4, 1000), "float32"), training=True).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}
    np.testing.assert_array_equal(layer(np.ones((2, 3), "float32"), training=False), 1.0)
