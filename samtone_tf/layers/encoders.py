"""Encoder bodies over already-embedded tokens: BERT-style and T5-style.

Both take ``(token_embeddings [B, L, H], padding_mask [B, L])`` and return
``[B, L, H]``; they are built from keras-hub's layers (``TransformerEncoder``,
``PositionEmbedding``, the T5 transformer layer) and are config-complete.

``attention="bias"`` (the default) computes self-attention with an additive padding
bias and plain batched matmuls (:mod:`samtone_tf.layers.attention`: Keras' result, faster on
CPU) and its projections, feed-forward block and layer norms with fewer, fusable ops
(:mod:`samtone_tf.layers.fast_layers`);
``"keras"`` keeps keras-hub's layer as it is (Keras' ``MultiHeadAttention``,
``EinsumDense``, ``Dense`` and ``LayerNormalization``).

``remat=True`` recomputes each transformer layer in the backward pass instead of
keeping its activations (:mod:`samtone_tf.layers.remat`; dropout replayed exactly): training
memory of one layer at a time, for one more forward pass per step.
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

from samtone_tf.internals import retype, t5_layers
from samtone_tf.layers.attention import BiasMultiHeadAttention
from samtone_tf.layers.fast_layers import FusedDense, FusedEinsumDense, LeanLayerNormalization
from samtone_tf.layers.remat import remat_call

ATTENTION = ("bias", "keras")


@keras.saving.register_keras_serializable(package="samtone_tf")
class BiasTransformerEncoder(keras_hub.layers.TransformerEncoder):
    """keras-hub's ``TransformerEncoder`` whose self-attention layer computes with
    :class:`~samtone_tf.layers.attention.BiasMultiHeadAttention` and whose projections,
    feed-forward layers and layer norms compute with :mod:`samtone_tf.layers.fast_layers`'
    ``FusedEinsumDense``, ``FusedDense`` and ``LeanLayerNormalization`` (same weights,
    same result, fewer and fused kernels on CPU)."""

    def build(self, inputs_shape):
        super().build(inputs_shape)
        # keras-hub builds plain Keras layers; the subclasses only override the
        # computation (``_compute_attention``, ``call``) and hold no state of their own,
        # so the built layers (weights, dropout layer, config) are switched in place.
        for sublayer, fast_class in fast_sublayers(self):
            retype(sublayer, fast_class)


def fast_sublayers(layer):
    """[(sublayer, samtone_tf class)] for a built keras-hub ``TransformerEncoder``: the
    Keras layers :class:`BiasTransformerEncoder` computes with samtone_tf's subclasses
    (each class's direct base is the Keras class it stands in for)."""
    attention = layer._self_attention_layer
    return [(attention, BiasMultiHeadAttention),
            *((projection, FusedEinsumDense) for projection in (
                attention._query_dense, attention._key_dense, attention._value_dense,
                attention._output_dense)),
            (layer._feedforward_intermediate_dense, FusedDense),
            (layer._feedforward_output_dense, FusedDense),
            (layer._self_attention_layer_norm, LeanLayerNormalization),
            (layer._feedforward_layer_norm, LeanLayerNormalization)]


@keras.saving.register_keras_serializable(package="samtone_tf")
class TransformerTextEncoder(keras.layers.Layer):
    """BERT-style encoder body over already-embedded tokens.

    h₀ = LayerNorm(token_embeddings + position_embedding [+ token_type_0 vector]),
    then ``num_layers`` post-LN transformer blocks. Returns [batch, length, hidden].
    """

    def __init__(self, hidden_dim, num_layers, num_heads, intermediate_dim, max_length,
                 dropout=0.0, activation="gelu", layer_norm_epsilon=1e-12,
                 use_token_type=False, remat=False, attention="bias", **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {attention!r}")
        self.attention = attention
        self.remat = bool(remat)
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_length = max_length
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_token_type = use_token_type
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            max_length, initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="position_embedding")
        layer_norm_class = (LeanLayerNormalization if attention == "bias"
                            else keras.layers.LayerNormalization)
        self.embeddings_layer_norm = layer_norm_class(
            epsilon=layer_norm_epsilon, name="embeddings_layer_norm")
        self.embeddings_dropout = keras.layers.Dropout(dropout)
        layer_class = (BiasTransformerEncoder if attention == "bias"
                       else keras_hub.layers.TransformerEncoder)
        self.transformer_layers = [
            layer_class(
                intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
                activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                name=f"transformer_layer_{i}")
            for i in range(num_layers)
        ]

    def build(self, input_shape):
        self.position_embedding.build(input_shape)
        self.embeddings_layer_norm.build(input_shape)
        if self.use_token_type:
            self.token_type_vector = self.add_weight(
                name="token_type_vector", shape=(self.hidden_dim,), initializer="zeros")
        for layer in self.transformer_layers:
            layer.build(input_shape)
        self.built = True

    def call(self, token_embeddings, padding_mask, training=None):
        x = token_embeddings + self.position_embedding(token_embeddings)
        if self.use_token_type:
            x = x + tf.cast(self.token_type_vector, x.dtype)
        x = self.embeddings_layer_norm(x)
        x = self.embeddings_dropout(x, training=training)
        for layer in self.transformer_layers:
            if self.remat and training:
                x = remat_call(layer, lambda h, layer=layer: layer(
                    h, padding_mask=padding_mask, training=True), x)
            else:
                x = layer(x, padding_mask=padding_mask, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({k: getattr(self, k) for k in (
            "hidden_dim", "num_layers", "num_heads", "intermediate_dim", "max_length",
            "dropout", "activation", "layer_norm_epsilon", "use_token_type", "remat",
            "attention")})
        return config


@keras.saving.register_keras_serializable(package="samtone_tf")
class T5TextEncoder(keras.layers.Layer):
    """The encoder half of T5 (v1.1 style: RMS layer norm, relative position bias in
    the first layer, optionally gated GELU), over already-embedded tokens, built
    from keras-hub's T5 layers. Returns [batch, length, hidden]."""

    def __init__(self, hidden_dim, num_layers, num_heads, intermediate_dim, key_value_dim=None,
                 dropout=0.0, activation="gelu", use_gated_activation=True,
                 layer_norm_epsilon=1e-6, remat=False, **kwargs):
        T5LayerNorm, T5TransformerLayer = t5_layers()

        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.remat = bool(remat)
        self.config = dict(hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
                           intermediate_dim=intermediate_dim, key_value_dim=key_value_dim,
                           dropout=dropout, activation=activation,
                           use_gated_activation=use_gated_activation,
                           layer_norm_epsilon=layer_norm_epsilon)
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.transformer_layers = [
            T5TransformerLayer(
                is_decoder=False, hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
                key_value_dim=key_value_dim or hidden_dim // num_heads, dropout=dropout,
                activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                num_heads=num_heads, use_gated_activation=use_gated_activation,
                use_relative_attention_bias=(i == 0), name=f"transformer_encoder_layer_{i}")
            for i in range(num_layers)]
        self.output_layer_norm = T5LayerNorm(epsilon=layer_norm_epsilon,
                                             name="encoder_output_layer_norm")
        self.output_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        for layer in self.transformer_layers:
            layer.build(input_shape)
        self.output_layer_norm.build(input_shape)
        self.built = True

    def call(self, token_embeddings, padding_mask, training=None):
        x = self.embedding_dropout(token_embeddings, training=training)
        attention_mask = tf.cast(padding_mask, "int32")[:, None, :]
        position_bias = None
        for layer in self.transformer_layers:
            if self.remat and training:
                # the shared bias is an input (it carries the first layer's gradient);
                # the first layer computes it, so it gets x alone
                inputs = (x,) if position_bias is None else (x, position_bias)
                x, position_bias = remat_call(layer, lambda h, b=None, layer=layer: layer(
                    h, attention_mask=attention_mask, position_bias=b,
                    use_causal_mask=False, training=True), *inputs)
                continue
            x, position_bias = layer(x, attention_mask=attention_mask,
                                     position_bias=position_bias, use_causal_mask=False,
                                     training=bool(training))
        x = self.output_layer_norm(x)
        return self.output_dropout(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(self.config, remat=self.remat)
        return config
