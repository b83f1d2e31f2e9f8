"""Encoder towers: token embedding → transformer encoder → pooling → projection → L2.

A tower is split into parts that the dual-encoder architectures share or keep
apart (Dong et al. 2022, "Exploring Dual Encoder Architectures for Question
Answering"):

* ``token_embedding``: a ``keras.layers.Embedding`` (shared by ADE-STE / ADE-FTE);
* ``encoder``: :class:`TransformerTextEncoder`, positions + transformer layers;
* ``projection``: an optional bias-free ``Dense`` (shared by ADE-SPL);
* pooling ("mean" over non-padding tokens, or "cls") and L2 normalisation.

A *backbone spec* makes fresh parts; :class:`SmallTransformer` is the
from-scratch spec. Pretrained specs (BERT-family folders) build the same parts
and copy weights into them, so every architecture works for every backbone.

Example:

>>> import numpy as np
>>> from samtone_tf.towers import SmallTransformer, Tower
>>> spec = SmallTransformer(vocab_size=100, hidden_dim=16, num_layers=1,
...                         num_heads=2, intermediate_dim=32, max_length=8)
>>> tower = Tower(spec.make_token_embedding(), spec.make_encoder(), pooling="mean")
>>> ids = np.array([[5, 6, 7, 0]], "int32"); mask = np.array([[1, 1, 1, 0]], "int32")
>>> out = tower({"token_ids": ids, "padding_mask": mask})
>>> tuple(out.shape), round(float(np.linalg.norm(out)), 4)
((1, 16), 1.0)
"""

from __future__ import annotations

import dataclasses

import keras
import keras_hub
import tensorflow as tf

POOLING_OPTIONS = ("mean", "cls")


@keras.saving.register_keras_serializable(package="samtone_tf")
class TransformerTextEncoder(keras.layers.Layer):
    """BERT-style encoder body over already-embedded tokens.

    h₀ = LayerNorm(token_embeddings + position_embedding [+ token_type_0 vector]),
    then ``num_layers`` post-LN transformer blocks. Returns [batch, length, hidden].
    """

    def __init__(self, hidden_dim, num_layers, num_heads, intermediate_dim, max_length,
                 dropout=0.0, activation="gelu", layer_norm_epsilon=1e-12,
                 use_token_type=False, **kwargs):
        super().__init__(**kwargs)
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
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="embeddings_layer_norm")
        self.embeddings_dropout = keras.layers.Dropout(dropout)
        self.transformer_layers = [
            keras_hub.layers.TransformerEncoder(
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
            x = layer(x, padding_mask=padding_mask, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({k: getattr(self, k) for k in (
            "hidden_dim", "num_layers", "num_heads", "intermediate_dim", "max_length",
            "dropout", "activation", "layer_norm_epsilon", "use_token_type")})
        return config


@dataclasses.dataclass(frozen=True)
class SmallTransformer:
    """Spec of a small from-scratch transformer tower (no pretrained weights)."""

    vocab_size: int = 30522
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_dim: int = 256
    max_length: int = 128
    dropout: float = 0.0

    def make_token_embedding(self, name="token_embedding"):
        return keras.layers.Embedding(
            self.vocab_size, self.hidden_dim, name=name,
            embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02))

    def make_encoder(self, name="encoder"):
        return TransformerTextEncoder(
            self.hidden_dim, self.num_layers, self.num_heads, self.intermediate_dim,
            self.max_length, dropout=self.dropout, name=name)

    def initialize(self, token_embedding, encoder):
        """Pretrained specs copy weights here; a from-scratch tower keeps its init."""


@keras.saving.register_keras_serializable(package="samtone_tf")
class Tower(keras.layers.Layer):
    """One tower: ``{"token_ids": [B, L] int, "padding_mask": [B, L] int/bool}`` →
    L2-normalised float32 ``[B, dim]``.

    Mean pooling: Σ_t m_t h_t / max(Σ_t m_t, 1); "cls": h_0. The optional
    projection is applied after pooling, then x / max(‖x‖₂, 1e-12).
    """

    def __init__(self, token_embedding, encoder, pooling="mean", projection=None,
                 **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLING_OPTIONS:
            raise ValueError(f"pooling must be one of {POOLING_OPTIONS}, got {pooling!r}")
        self.token_embedding = token_embedding
        self.encoder = encoder
        self.pooling = pooling
        self.projection = projection

    @property
    def output_dim(self):
        if self.projection is not None:
            return self.projection.units
        return self.encoder.hidden_dim

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=None):
        token_ids, padding_mask = _unpack_tokens(inputs)
        mask = tf.cast(padding_mask, tf.bool)
        embedded = self.token_embedding(token_ids)
        sequence = self.encoder(embedded, padding_mask=mask, training=training)
        sequence = tf.cast(sequence, tf.float32)
        if self.pooling == "mean":
            weights = tf.cast(mask, tf.float32)[:, :, None]
            pooled = tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(
                tf.reduce_sum(weights, axis=1), 1.0)
        else:
            pooled = sequence[:, 0]
        if self.projection is not None:
            pooled = tf.cast(self.projection(pooled), tf.float32)
        return tf.math.l2_normalize(pooled, axis=-1, epsilon=1e-24)


def _unpack_tokens(inputs):
    if not isinstance(inputs, dict) or not {"token_ids", "padding_mask"} <= set(inputs):
        got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(
            'a tower takes {"token_ids": [batch, length], "padding_mask": [batch, length]}; '
            f"got {got}")
    token_ids = tf.convert_to_tensor(inputs["token_ids"])
    padding_mask = tf.convert_to_tensor(inputs["padding_mask"])
    if token_ids.shape.rank != 2 or not token_ids.shape.is_compatible_with(padding_mask.shape):
        raise ValueError(
            "token_ids and padding_mask must both be [batch, length]; got token_ids "
            f"{tuple(token_ids.shape.as_list())} and padding_mask "
            f"{tuple(padding_mask.shape.as_list())}")
    return token_ids, padding_mask
