"""Dropout whose masks are keyed on (seed, step, side, example, layer), not on a
random generator's state.

Keras draws a dropout mask from a seed generator that advances at every call, so the
masks an example gets depend on how a step is computed: the gradient cache embeds a
batch in chunks, remat recomputes each layer, several replicas each draw for their share.
Then the memory policy changed what was trained. Here a mask element is a hash of

    (seed, optimizer step, side, global row of the example, layer, position in the row)

(``side``: 0 queries, 1 documents, 2 hard negatives, whose rows are the flattened
[batch × negatives]), so every way of computing a step draws the same masks for the same
example: the plain step, the gradient-cache step (any chunk size), the remat step, one
device or N replicas (the global row is the replica's offset plus the local row).

The keys are set by the model around each tower call in training (:func:`dropout_keys`,
while the step is traced); a :class:`KeyedDropout` called outside such a block (an
exported SavedModel's ``training=True`` function, a tower used on its own) drops out as
Keras' ``Dropout`` does. The hash is lowbias32 (a 32-bit integer finaliser), in uint32
tensor ops that run on CPU, GPU, TPU and under XLA; a mask element keeps its input when
hash >= rate · 2^32, scaled by 1 / (1 - rate) as in Keras.
"""

from __future__ import annotations

import contextlib
import threading
import zlib

import keras
import tensorflow as tf

from samtone_tf.internals import retype

SIDES = {"query": 0, "document": 1, "hard_negatives": 2}
_KEYS = threading.local()


@contextlib.contextmanager
def dropout_keys(seed, step, rows, side):
    """Inside the block, :class:`KeyedDropout` layers key their masks on ``seed`` (an
    int), ``step`` (a scalar integer tensor), ``rows`` (int [batch]: each row's global
    index) and ``side`` (an int, :data:`SIDES`). The parts of the hash that every layer
    shares (seed, step, side; each row's hash) are computed once here."""
    with reenter_keys((_base_key(seed, step, side), _row_hashes(rows))):
        yield


@contextlib.contextmanager
def reenter_keys(keys):
    """Makes ``keys`` (what :func:`current_keys` returned) the active keys inside the
    block: remat traces a layer's recomputation outside its caller's block."""
    stack = getattr(_KEYS, "stack", None)
    if stack is None:
        stack = _KEYS.stack = []
    stack.append(keys)
    try:
        yield
    finally:
        stack.pop()


def current_keys():
    """The innermost :func:`dropout_keys` of this thread as (base key, row hashes), or
    None."""
    stack = getattr(_KEYS, "stack", None)
    return stack[-1] if stack else None


def row_offset(local_rows):
    """The global index of this replica's first row: replica id × local rows (replicas
    hold equal shares of the global batch)."""
    context = tf.distribute.get_replica_context()
    replica = 0 if context is None else context.replica_id_in_sync_group
    return tf.cast(replica, tf.int32) * tf.cast(local_rows, tf.int32)


def global_rows(local_rows):
    """[local_rows] global row indices of this replica's rows."""
    return row_offset(local_rows) + tf.range(tf.cast(local_rows, tf.int32))


def _u32(value):
    return tf.cast(value, tf.uint32)


def _mix(x):
    """lowbias32: a bijective 32-bit finaliser with good avalanche."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))
    x = x * _u32(0x7FEB352D)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(15)))
    x = x * _u32(0x846CA68B)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))


def _base_key(seed, step, side):
    key = _mix(tf.bitwise.bitwise_xor(_u32(seed & 0xFFFFFFFF), _u32(0x9E3779B9)))
    for part in (tf.cast(step, tf.int64) & 0xFFFFFFFF, side):
        key = _mix(tf.bitwise.bitwise_xor(key, _u32(part)))
    return key


def _row_hashes(rows):
    return _mix(_u32(rows) + _u32(0x632BE5AB))


def _layer_bits(shape, base, row_hashes, layer):
    key = _mix(tf.bitwise.bitwise_xor(base, layer))
    row_keys = _mix(tf.bitwise.bitwise_xor(key, row_hashes))
    inner = shape[1:]
    positions = _mix(_u32(tf.range(tf.reduce_prod(inner))) + _u32(0x85EBCA77))
    row_keys = tf.reshape(row_keys, tf.concat([[-1], tf.ones_like(inner)], 0))
    return _mix(tf.bitwise.bitwise_xor(row_keys, tf.reshape(positions, inner)))


def _keep(shape, base, row_hashes, layer, threshold):
    return _layer_bits(shape, base, row_hashes, layer) >= threshold


# One graph function shared by every dropout call of a traced step, called and not
# inlined: inlined, the hash's ~40 ops per call doubled the training step's graph
# (MiniLM, gradient cache + remat: 33.7k function nodes against Keras dropout's 14.5k)
# and the memory TensorFlow keeps for it (+0.27 GB resident, whatever the batch).
_keep_function = tf.function(
    _keep, autograph=False, experimental_attributes={"_noinline": True},
    input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.uint32),
                     tf.TensorSpec([None], tf.uint32), tf.TensorSpec([], tf.uint32),
                     tf.TensorSpec([], tf.uint32)])


def keyed_bits(shape, seed, step, rows, side, layer):
    """uint32 of ``shape`` ([rows, ...]): element (r, p) is a hash of (seed, step, side,
    layer, rows[r], p)."""
    return _layer_bits(shape, _base_key(seed, step, side), _row_hashes(rows), _u32(layer))


@keras.saving.register_keras_serializable(package="samtone_tf")
class KeyedDropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` with masks keyed as the module docstring says when a
    :func:`dropout_keys` block is active; Keras' own dropout otherwise. Same config."""

    def call(self, inputs, training=False):
        keys = current_keys()
        if not training or self.rate <= 0 or keys is None:
            return super().call(inputs, training=training)
        base, row_hashes = keys
        layer = getattr(self, "layer_key", None)
        if layer is None:
            layer = zlib.crc32(self.name.encode()) & 0x7FFFFFFF
        shape = tf.shape(inputs)
        if self.noise_shape is not None:
            shape = tf.convert_to_tensor(
                [shape[i] if dim is None else dim for i, dim in enumerate(self.noise_shape)])
        threshold = _u32(min(int(self.rate * 2.0 ** 32), 2 ** 32 - 1))
        keep = _keep_function(tf.cast(shape, tf.int32), base, row_hashes, _u32(layer),
                              threshold)
        keep = tf.ensure_shape(keep, inputs.shape if self.noise_shape is None
                               else [None] * len(self.noise_shape))
        scale = tf.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))


def key_dropout_layers(layer):
    """Makes every ``keras.layers.Dropout`` inside ``layer`` (its sublayers at any
    depth, keras-hub's included) a :class:`KeyedDropout` keyed by ``layer``'s name and
    its place among them (stable across saving and loading); returns how many."""
    count = 0
    for sub in layer._flatten_layers(include_self=True):
        if isinstance(sub, keras.layers.Dropout) and (
                retype(sub, KeyedDropout) or isinstance(sub, KeyedDropout)):
            sub.layer_key = zlib.crc32(f"{layer.name}/{count}".encode()) & 0x7FFFFFFF
            count += 1
    return count
