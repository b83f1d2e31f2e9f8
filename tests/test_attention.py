"""BiasMultiHeadAttention against keras.layers.MultiHeadAttention (the independent
reference: Keras' own einsum + masked-softmax computation), with the same weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.layers.attention import BiasMultiHeadAttention
from samtone_tf.layers.encoders import TransformerTextEncoder

B, L, H, HEADS = 3, 7, 16, 4


def _pair(dropout=0.0, seed=5):
    layers = []
    for cls in (keras.layers.MultiHeadAttention, BiasMultiHeadAttention):
        layer = cls(num_heads=HEADS, key_dim=H // HEADS, dropout=dropout, seed=seed)
        layer.build(query_shape=(B, L, H), value_shape=(B, L, H))
        layers.append(layer)
    layers[1].set_weights(layers[0].get_weights())
    return layers


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, L, H)).astype("float32")
    lengths = np.array([L, 4, 1])
    padding = np.arange(L)[None, :] < lengths[:, None]
    return x, padding


@pytest.mark.parametrize("mask_shape", ["padding", "full", "none"])
def test_outputs_and_gradients_equal_keras(mask_shape):
    keras_layer, bias_layer = _pair()
    x, padding = _inputs()
    rng = np.random.default_rng(1)
    mask = {"padding": padding[:, None, :],  # [B, 1, S], what keras-hub passes
            "full": padding[:, None, :] & (rng.random((B, L, L)) > 0.3) | np.eye(L, dtype=bool),
            "none": None}[mask_shape]
    outputs, grads = [], []
    for layer in (keras_layer, bias_layer):
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = layer(xv, xv, attention_mask=mask)
            loss = tf.reduce_sum(y * np.cos(np.arange(B * L * H)).reshape(B, L, H))
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [xv] + layer.trainable_variables)])
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_training_outputs_gradients_and_dropout_masks_are_keras_own():
    """training=True: the same dropout layer and seed draw the same masks, so outputs
    and gradients equal Keras' training step."""
    x, padding = _inputs()
    mask = padding[:, None, :]
    results = []
    for layer in _pair(dropout=0.3):
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = layer(xv, xv, attention_mask=mask, training=True)
            loss = tf.reduce_sum(y * np.cos(np.arange(B * L * H)).reshape(B, L, H))
        results.append([y.numpy()] + [g.numpy() for g in
                                      tape.gradient(loss, [xv] + layer.trainable_variables)])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, atol=1e-5)
    inference = _pair(dropout=0.3)[1](x, x, attention_mask=mask).numpy()
    assert np.abs(results[1][0] - inference).max() > 1e-3  # dropout did act


def test_attention_scores_fall_back_to_keras():
    keras_layer, bias_layer = _pair()
    x, padding = _inputs()
    y0, s0 = keras_layer(x, x, attention_mask=padding[:, None, :], return_attention_scores=True)
    y1, s1 = bias_layer(x, x, attention_mask=padding[:, None, :], return_attention_scores=True)
    np.testing.assert_allclose(s1.numpy(), s0.numpy(), atol=1e-6)
    assert BiasMultiHeadAttention.from_config(bias_layer.get_config()).num_heads == HEADS


def test_encoder_bias_attention_equals_keras_attention_and_round_trips():
    x, padding = _inputs(3)
    encoders = [TransformerTextEncoder(H, 2, HEADS, 32, L, dropout=0.1, attention=a)
                for a in ("keras", "bias")]
    for encoder in encoders:
        encoder.build((B, L, H))
    encoders[1].set_weights(encoders[0].get_weights())
    want, got = (e(x, padding) for e in encoders)
    np.testing.assert_allclose(got.numpy()[padding], want.numpy()[padding], atol=1e-5)
    attention = encoders[1].transformer_layers[0]._self_attention_layer
    assert isinstance(attention, BiasMultiHeadAttention)
    config = encoders[1].get_config()
    assert config["attention"] == "bias"
    clone = TransformerTextEncoder.from_config(config)
    clone.build((B, L, H))
    clone.set_weights(encoders[1].get_weights())
    np.testing.assert_allclose(clone(x, padding).numpy(), got.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="attention must be one of"):
        TransformerTextEncoder(H, 1, HEADS, 32, L, attention="flash")


def test_bfloat16_close_to_float32():
    keras_layer, _ = _pair()
    layer = BiasMultiHeadAttention(num_heads=HEADS, key_dim=H // HEADS, dtype="mixed_bfloat16")
    layer.build(query_shape=(B, L, H), value_shape=(B, L, H))
    layer.set_weights(keras_layer.get_weights())
    x, padding = _inputs()
    want = keras_layer(x, x, attention_mask=padding[:, None, :]).numpy()
    got = layer(x, x, attention_mask=padding[:, None, :])
    assert got.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), want, atol=0.05)
