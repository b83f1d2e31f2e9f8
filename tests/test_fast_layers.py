"""samtone_tf.layers.fast_layers against Keras' own layers (the independent reference: Keras'
matmul / einsum + add + activation, Keras' layer norm formula), same weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.layers.encoders import TransformerTextEncoder
from samtone_tf.layers.fast_layers import FusedDense, FusedEinsumDense, LeanLayerNormalization

SHAPE = (3, 5, 8)


def _pair(activation, use_bias=True, dtype=None):
    layers = [cls(6, activation=activation, use_bias=use_bias, dtype=dtype,
                  bias_initializer="random_normal")
              for cls in (keras.layers.Dense, FusedDense)]
    for layer in layers:
        layer.build(SHAPE)
    layers[1].set_weights(layers[0].get_weights())
    return layers


@pytest.mark.parametrize("activation,use_bias", [("gelu", True), ("relu", True),
                                                 (None, True), ("gelu", False)])
def test_outputs_and_gradients_equal_keras_dense(activation, use_bias):
    x = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    weights = np.cos(np.arange(np.prod(SHAPE[:-1]) * 6)).reshape(SHAPE[:-1] + (6,))
    results = []
    for layer in _pair(activation, use_bias):
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = layer(xv)
            loss = tf.reduce_sum(y * weights)
        results.append([y.numpy()] + [g.numpy() for g in
                                      tape.gradient(loss, [xv] + layer.trainable_variables)])
    assert results[1][0].shape == SHAPE[:-1] + (6,)
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_dynamic_shapes_rank_two_and_config():
    keras_dense, fused = _pair("gelu")
    function = tf.function(fused, input_signature=[tf.TensorSpec([None, None, 8])])
    for rows, length in ((2, 7), (4, 3)):
        x = np.random.default_rng(rows).normal(size=(rows, length, 8)).astype("float32")
        np.testing.assert_allclose(function(x).numpy(), keras_dense(x).numpy(), atol=1e-5)
    x2 = np.ones((4, 8), "float32")  # rank 2: Keras' own call
    np.testing.assert_allclose(fused(x2).numpy(), keras_dense(x2).numpy(), atol=1e-6)
    clone = FusedDense.from_config(fused.get_config())
    assert clone.units == 6 and clone.get_config()["activation"] == "gelu"


def test_bfloat16_policy_computes_in_bfloat16():
    keras_dense, _ = _pair("gelu")
    _, fused = _pair("gelu", dtype="mixed_bfloat16")
    fused.set_weights(keras_dense.get_weights())
    x = np.random.default_rng(1).normal(size=SHAPE).astype("float32")
    got = fused(x)
    assert got.dtype == tf.bfloat16 and fused.kernel.dtype == "float32"
    np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), keras_dense(x).numpy(),
                               atol=0.05)


def test_encoder_feedforward_layers_are_fused_and_equal_keras():
    """The default encoder's feed-forward layers are FusedDense, its attention
    projections FusedEinsumDense and its layer norms LeanLayerNormalization; with
    attention="keras" keras-hub's layer is untouched, and the two compute the same."""
    encoders = [TransformerTextEncoder(8, 2, 2, 16, 5, attention=a) for a in ("keras", "bias")]
    for encoder in encoders:
        encoder.build(SHAPE)
    encoders[1].set_weights(encoders[0].get_weights())
    plain, fused = (e.transformer_layers[0] for e in encoders)
    assert type(plain._feedforward_intermediate_dense) is keras.layers.Dense
    assert type(plain._self_attention_layer._query_dense) is keras.layers.EinsumDense
    assert isinstance(fused._feedforward_intermediate_dense, FusedDense)
    assert isinstance(fused._feedforward_output_dense, FusedDense)
    attention = fused._self_attention_layer
    for projection in (attention._query_dense, attention._key_dense, attention._value_dense,
                       attention._output_dense):
        assert isinstance(projection, FusedEinsumDense)
    assert isinstance(fused._feedforward_layer_norm, LeanLayerNormalization)
    assert isinstance(encoders[1].embeddings_layer_norm, LeanLayerNormalization)
    assert type(encoders[0].embeddings_layer_norm) is keras.layers.LayerNormalization
    x = np.random.default_rng(2).normal(size=SHAPE).astype("float32")
    padding = np.ones(SHAPE[:2], bool)
    np.testing.assert_allclose(encoders[1](x, padding).numpy(), encoders[0](x, padding).numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("equation,input_shape,output_shape,bias_axes,activation", [
    ("abc,cde->abde", (3, 5, 8), (None, 2, 4), "de", None),  # attention q / k / v
    ("abcd,cde->abe", (3, 5, 2, 4), (None, 8), "e", None),  # attention output
    ("abc,cd->abd", (3, 5, 8), (None, 6), "d", "gelu"),
    ("abc,cde->abde", (3, 5, 8), (None, 2, 4), None, None),
    ("abc,cd->abd", (3, 5, 8), (5, 6), "bd", None),  # bias over a batch axis: Keras' call
    ("abc,bd->acd", (3, 5, 8), (8, 6), None, None),  # not a trailing contraction: Keras' call
])
def test_einsum_outputs_and_gradients_equal_keras(equation, input_shape, output_shape,
                                                  bias_axes, activation):
    layers = [cls(equation, output_shape, bias_axes=bias_axes, activation=activation,
                  bias_initializer="random_normal")
              for cls in (keras.layers.EinsumDense, FusedEinsumDense)]
    for layer in layers:
        layer.build(input_shape)
    layers[1].set_weights(layers[0].get_weights())
    x = np.random.default_rng(3).normal(size=input_shape).astype("float32")
    results = []
    for layer in layers:
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = layer(xv)
            loss = tf.reduce_sum(y * np.cos(np.arange(y.shape.num_elements())).reshape(y.shape))
        results.append([y.numpy()] + [g.numpy() for g in
                                      tape.gradient(loss, [xv] + layer.trainable_variables)])
    for got, want in zip(results[1], results[0]):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)
    function = tf.function(layers[1], input_signature=[
        tf.TensorSpec((None, None) + tuple(input_shape[2:]))])
    np.testing.assert_allclose(function(x).numpy(), results[0][0], atol=1e-5)
    clone = FusedEinsumDense.from_config(layers[1].get_config())
    assert clone.equation == equation


@pytest.mark.parametrize("kwargs,dtype", [({}, None), ({"center": False}, None),
                                          ({"scale": False}, None), ({}, "mixed_bfloat16"),
                                          ({"axis": 1}, None), ({"rms_scaling": True}, None)])
def test_layer_norm_outputs_and_gradients_equal_keras(kwargs, dtype):
    """Last axis: the lean formula; axis 1 and RMS scaling: Keras' own call."""
    layers = [cls(epsilon=1e-12, dtype=dtype, beta_initializer="random_normal",
                  gamma_initializer="random_normal", **kwargs)
              for cls in (keras.layers.LayerNormalization, LeanLayerNormalization)]
    for layer in layers:
        layer.build(SHAPE)
    layers[1].set_weights(layers[0].get_weights())
    x = (3 + 2 * np.random.default_rng(4).normal(size=SHAPE)).astype("float32")
    weights = np.cos(np.arange(np.prod(SHAPE))).reshape(SHAPE)
    results = []
    for layer in layers:
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = layer(xv)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        results.append([tf.cast(y, tf.float32).numpy()] + [
            g.numpy() for g in tape.gradient(loss, [xv] + layer.trainable_variables)])
        assert y.dtype == (tf.bfloat16 if dtype else tf.float32)
    atol = 0.05 if dtype else 1e-5
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, atol=atol)
    assert LeanLayerNormalization.from_config(layers[1].get_config()).epsilon == 1e-12
