"""How token batches are padded: ``dynamic``, ``buckets`` or ``max_length``.

* ``dynamic``: each batch is as wide as its longest text (the tokenizers' own output;
  corpus encoding rounds the width up to a multiple of 16). Least compute;
  one shape per distinct width, so a compiler (XLA, TPU) sees many shapes.
* ``buckets``: each batch is padded to the smallest of a few widths that holds it
  (by default the powers of two from 16 up to the max length, and the max length
  itself: 16, 32, 64, 128, 256 for 256 tokens). At most that many shapes per side, so
  XLA and TPUs compile a handful of programs, at the cost of some padding.
* ``max_length``: every batch is ``max_length`` wide: one static shape.

Padding never changes an embedding: the towers mask padded positions out of
attention and pooling (tested: the loss on bucketed batches equals the loss on
dynamic ones).

>>> bucket_widths(256)
(16, 32, 64, 128, 256)
>>> bucket_widths(100)
(16, 32, 64, 100)
>>> [padded_width(w, "buckets", 256) for w in (3, 16, 17, 200)]
[16, 16, 32, 256]
>>> padded_width(17, "max_length", 256), padded_width(17, "dynamic", 256)
(256, 17)
"""

from __future__ import annotations

import bisect

import tensorflow as tf

PADDING_OPTIONS = ("dynamic", "buckets", "max_length")
SMALLEST_BUCKET = 16


def check_padding(padding):
    if padding not in PADDING_OPTIONS:
        raise ValueError(f"padding must be one of {PADDING_OPTIONS}, got {padding!r}")


def bucket_widths(max_length, smallest=SMALLEST_BUCKET):
    """Powers of two from ``smallest`` below ``max_length``, then ``max_length``."""
    widths, width = [], smallest
    while width < max_length:
        widths.append(width)
        width *= 2
    return tuple(widths + [int(max_length)])


def padded_width(width, padding, max_length, buckets=None):
    """The width (a Python int) a batch of ``width`` tokens is padded to."""
    check_padding(padding)
    width = min(int(width), int(max_length))
    if padding == "dynamic":
        return width
    if padding == "max_length":
        return int(max_length)
    buckets = tuple(buckets or bucket_widths(max_length))
    return buckets[min(bisect.bisect_left(buckets, width), len(buckets) - 1)]


def pad_tokens(tokens, padding, max_length, buckets=None):
    """A token dict ({"token_ids", "padding_mask"}, tensors [..., L]) padded on the
    last axis as ``padding`` says; works inside tf.data and graphs. With ``buckets``
    or ``max_length`` the width is static when ``padding == "max_length"`` and one
    of ``buckets`` otherwise."""
    check_padding(padding)
    if padding == "dynamic":
        return tokens
    ids = tf.convert_to_tensor(tokens["token_ids"])
    width = tf.shape(ids)[-1]
    if padding == "max_length":
        target = tf.constant(int(max_length))
    else:
        boundaries = tf.constant(buckets or bucket_widths(max_length), tf.int32)
        index = tf.searchsorted(boundaries, tf.reshape(width, [1]), side="left")[0]
        target = boundaries[tf.minimum(index, tf.size(boundaries) - 1)]
    out = {}
    for key, value in tokens.items():
        value = tf.convert_to_tensor(value)
        rank = value.shape.rank
        pads = [[0, 0]] * (rank - 1) + [[0, tf.maximum(target - width, 0)]]
        value = tf.pad(value[..., :target], pads)
        if padding == "max_length":
            value = tf.ensure_shape(value, value.shape[:-1].concatenate([int(max_length)]))
        out[key] = value
    return out
