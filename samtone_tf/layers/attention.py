"""Self-attention with an additive padding bias and plain batched matmuls.

``BiasMultiHeadAttention`` is ``keras.layers.MultiHeadAttention`` with its documented
hook, ``_compute_attention``, overridden; the weights, projections, dropout layer and
config are Keras' own. For each head (scores in the compute dtype, as Keras does)::

    S = (Q / √d_k) Kᵀ + bias,   bias[b, t, s] = 0 where the mask keeps key s, else −1e9
    A = dropout(softmax(S)) V

which is Keras' result (``tests/test_attention.py``: the same outputs and gradients
to float32 rounding, dropout masks included). What differs is how it is computed on
CPU, measured on the same machine in one run (``python benchmarks/attention.py``: B = 32,
12 heads, 256 tokens, one layer, inference; ``benchmarks/encode.py --attention`` for
whole-model encoding, docs/RESULTS.md):

* Keras runs ``einsum("aecd,abcd->acbe")`` and then ``where(mask, scores, −1e9)`` over
  the whole [B, heads, T, S] score tensor (``keras.layers.Softmax`` with a mask);
* here the heads are moved forward once, the scores are a ``tf.matmul`` (oneDNN's batched
  matmul) and the padding mask is a [B, 1, 1|T, S] bias added in one broadcast
  (83 ms → 41 ms per layer call; PyTorch's fused ``scaled_dot_product_attention``
  32 ms).

Anything this path does not cover (returned attention scores, a causal mask, attention
over more than one axis) falls back to Keras' implementation.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _large_negative_number(dtype):
    """The value Keras' softmax gives masked positions: -3e4 in float16, else -1e9."""
    return -3e4 if tf.as_dtype(dtype) == tf.float16 else -1e9


@keras.saving.register_keras_serializable(package="samtone_tf")
class BiasMultiHeadAttention(keras.layers.MultiHeadAttention):
    """``keras.layers.MultiHeadAttention`` computing padded self-attention with an
    additive mask bias and ``tf.matmul`` (module docstring); same weights and config."""

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        if (return_attention_scores or use_causal_mask or len(query.shape) != 4
                or tuple(self._attention_axes) != (1,)):
            return super()._compute_attention(
                query, key, value, attention_mask=attention_mask, training=training,
                return_attention_scores=return_attention_scores,
                use_causal_mask=use_causal_mask)
        dtype = query.dtype
        scale = tf.cast(self._inverse_sqrt_key_dim, dtype)
        q = tf.transpose(query, [0, 2, 1, 3]) * scale  # [B, N, T, d]
        k = tf.transpose(key, [0, 2, 1, 3])  # [B, N, S, d]
        v = tf.transpose(value, [0, 2, 1, 3])
        scores = tf.matmul(q, k, transpose_b=True)  # [B, N, T, S]
        if attention_mask is not None:
            mask = tf.cast(attention_mask, tf.bool)  # [B, T|1, S]
            bias = tf.where(mask, tf.zeros([], dtype),
                            tf.constant(_large_negative_number(dtype.name), dtype))
            scores += bias[:, None]
        weights = tf.nn.softmax(scores, axis=-1)
        if self._dropout > 0.0:
            weights = self._dropout_layer(weights, training=training)
        return tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3]), None
