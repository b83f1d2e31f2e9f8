"""Keras' ``Dense``, ``EinsumDense`` and ``LayerNormalization`` computed with fewer,
fusable TensorFlow ops: same weights, config and results, less time on CPU.

``FusedDense`` is ``keras.layers.Dense`` (same weights, config and result: y = act(x W +
b)) with ``call`` computing it on the rows flattened to 2-D::

    y = act(bias_add(matmul(reshape(x, [-1, d_in]), W), b)),  reshaped back to [..., d_out]

``FusedEinsumDense`` does the same for ``keras.layers.EinsumDense`` equations that
contract the input's trailing axes with the kernel's leading ones and keep the rest in
order (``"abc,cde->abde"``, ``"abcd,cde->abe"``: ``MultiHeadAttention``'s query, key,
value and output projections), with the bias over all output axes: the kernel is viewed
as a [∏ contracted, ∏ output] matrix. Other equations use Keras' own ``call``.

Keras' own ``Dense`` on a [batch, length, d] input runs ``matmul`` (which the TensorFlow
backend reshapes around a 2-D ``MatMul``), then ``AddV2`` for the bias, then the
activation as separate ops (GELU: ``Neg``, ``Erfc`` and three ``Mul`` over the whole
[batch·length, 1536] tensor); ``EinsumDense`` runs ``Einsum`` (on CPU a broadcast
batched matmul) and ``AddV2``. TensorFlow's grappler remapper fuses ``MatMul`` +
``BiasAdd`` + activation into one oneDNN kernel (``_MklNativeFusedMatMul``, the
activation applied while the output is still in cache) only when the graph has exactly
that shape: a 2-D ``MatMul`` feeding a ``BiasAdd``. In a profile of a MiniLM-sized
encoder forward the GELU ops and the separate bias adds disappear into that kernel;
encoding 1,000 SciFact abstracts ran 1.10–1.28× faster than with Keras' own layers in
each run (``python benchmarks/encode.py --fast-layers``; ``docs/RESULTS.md``, "Dense
layers and layer norms as fusable ops").

``LeanLayerNormalization`` is ``keras.layers.LayerNormalization`` over the last axis
computed as ``(x − mean) · rsqrt(var + ε) · γ + β`` (statistics in at least float32,
as Keras does): Keras' own formula, ``x · (γ·rsqrt(var + ε)) + (β − mean·γ·rsqrt(var +
ε))``, materialises two more full-size tensors (the broadcast scale and offset): six
element-wise passes instead of four. Other axes and RMS scaling use Keras' own ``call``.

``tests/test_fast_layers.py`` checks outputs and gradients against ``keras.layers.Dense``,
``keras.layers.EinsumDense`` and ``keras.layers.LayerNormalization`` with the same
weights. Inputs of rank 2, and layers with LoRA or quantization enabled, use Keras' own
``call``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="samtone_tf")
class FusedDense(keras.layers.Dense):
    """``keras.layers.Dense`` computed as a 2-D ``MatMul`` + ``BiasAdd`` + activation
    (module docstring): the pattern TensorFlow fuses into one oneDNN kernel."""

    def call(self, inputs, training=None):
        if (len(inputs.shape) < 3 or getattr(self, "lora_enabled", False)
                or getattr(self, "quantization_mode", None)):
            return super().call(inputs, training=training)
        x = tf.convert_to_tensor(inputs)
        shape = tf.shape(x)
        flat = tf.reshape(x, [-1, x.shape[-1]])
        y = tf.matmul(flat, tf.cast(self.kernel, flat.dtype))
        if self.bias is not None:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.activation is not None:
            y = self.activation(y)
        return tf.reshape(y, tf.concat([shape[:-1], [self.units]], axis=0))


def _trailing_contraction(equation, bias_axes):
    """(batch axes, contracted axes, output axes) when ``equation`` is
    ``P+C,C+O->P+O`` and the bias (if any) is over exactly ``O``; else None.

    >>> _trailing_contraction("abc,cde->abde", "de")  # MultiHeadAttention's query
    ('ab', 'c', 'de')
    >>> _trailing_contraction("abcd,cde->abe", "e")  # its output projection
    ('ab', 'cd', 'e')
    >>> _trailing_contraction("abc,cd->abd", "bd") is None  # bias over a batch axis
    True
    >>> _trailing_contraction("acb,cd->abd", None) is None  # not a trailing contraction
    True
    """
    try:
        inputs, out = equation.split("->")
        lhs, rhs = inputs.split(",")
    except ValueError:
        return None
    if "." in equation:
        return None
    for n in range(1, min(len(lhs), len(rhs)) + 1):
        contracted = lhs[-n:]
        if (rhs.startswith(contracted) and out == lhs[:-n] + rhs[n:]
                and not set(contracted) & set(out) and len(set(equation) - set(",->"))
                == len(lhs[:-n]) + len(rhs)):
            if bias_axes and bias_axes != rhs[n:]:
                return None
            return lhs[:-n], contracted, rhs[n:]
    return None


@keras.saving.register_keras_serializable(package="samtone_tf")
class FusedEinsumDense(keras.layers.EinsumDense):
    """``keras.layers.EinsumDense`` computed as a 2-D ``MatMul`` + ``BiasAdd`` (+
    activation) for trailing-axis contractions (module docstring)."""

    def call(self, inputs, training=None):
        split = _trailing_contraction(self.equation, self.bias_axes)
        if (split is None or getattr(self, "lora_enabled", False)
                or getattr(self, "quantization_mode", None)):
            return super().call(inputs, training=training)
        batch, contracted, output = split
        x = tf.convert_to_tensor(inputs)
        kernel = tf.cast(self.kernel, x.dtype)
        n_in = math.prod(kernel.shape[:len(contracted)])
        out_dims = list(kernel.shape[len(contracted):])
        y = tf.matmul(tf.reshape(x, [-1, n_in]),
                      tf.reshape(kernel, [n_in, math.prod(out_dims)]))
        if self.bias is not None:
            y = tf.nn.bias_add(y, tf.reshape(tf.cast(self.bias, y.dtype), [-1]))
        if self.activation is not None:
            y = self.activation(y)
        return tf.reshape(y, tf.concat([tf.shape(x)[:len(batch)], out_dims], axis=0))


@keras.saving.register_keras_serializable(package="samtone_tf")
class LeanLayerNormalization(keras.layers.LayerNormalization):
    """``keras.layers.LayerNormalization`` over the last axis as (x − mean) ·
    rsqrt(var + ε) · γ + β (module docstring); same weights, config and result."""

    def call(self, inputs):
        rank = len(inputs.shape)
        axes = list(self.axis) if isinstance(self.axis, (list, tuple)) else [self.axis]
        if self.rms_scaling or axes not in ([rank - 1], [-1]):
            return super().call(inputs)
        x = tf.convert_to_tensor(inputs)
        dtype = x.dtype
        if dtype in (tf.float16, tf.bfloat16):  # statistics in float32, as Keras does
            x = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        y = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            y = y * tf.cast(self.gamma, y.dtype)
        if self.beta is not None:
            y = y + tf.cast(self.beta, y.dtype)
        return tf.cast(y, self.compute_dtype)
