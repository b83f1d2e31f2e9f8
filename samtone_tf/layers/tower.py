"""Encoder towers: token embedding → transformer encoder → pooling → projection → L2.

A tower is split into parts that the dual-encoder architectures share or keep
apart (Dong et al. 2022, "Exploring Dual Encoder Architectures for Question
Answering"):

* ``token_embedding``: a ``keras.layers.Embedding`` (shared by ADE-STE / ADE-FTE);
* ``encoder``: :class:`TransformerTextEncoder`, positions + transformer layers;
* ``projection``: an optional bias-free ``Dense`` (shared by ADE-SPL);
* pooling ("mean" over non-padding tokens, "cls", or "last_token": the last non-padding
  token, as decoder embedders pool) and L2 normalisation.

A *backbone spec* makes fresh parts; :class:`SmallTransformer` is the
from-scratch spec. Pretrained specs (BERT-family folders) build the same parts
and copy weights into them, so every architecture works for every backbone.

Example:

>>> import numpy as np
>>> from samtone_tf.models import SmallTransformer
>>> from samtone_tf.layers.tower import Tower
>>> spec = SmallTransformer(vocab_size=100, hidden_dim=16, num_layers=1,
...                         num_heads=2, intermediate_dim=32, max_length=8)
>>> tower = Tower(spec.make_token_embedding(), spec.make_encoder(), pooling="mean")
>>> ids = np.array([[5, 6, 7, 0]], "int32"); mask = np.array([[1, 1, 1, 0]], "int32")
>>> out = tower({"token_ids": ids, "padding_mask": mask})
>>> tuple(out.shape), round(float(np.linalg.norm(out)), 4)
((1, 16), 1.0)
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from samtone_tf.layers.lora import adapter_side

POOLING_OPTIONS = ("mean", "cls", "last_token")


@keras.saving.register_keras_serializable(package="samtone_tf")
class Tower(keras.layers.Layer):
    """One tower: ``{"token_ids": [B, L] int, "padding_mask": [B, L] int/bool}`` →
    L2-normalised float32 ``[B, dim]``.

    Mean pooling: Σ_t m_t h_t / max(Σ_t m_t, 1); "cls": h_0; "last_token": h_{T-1} with
    T = Σ_t m_t (the mask's ones come first: the tokenizers pad on the right; h_0 for an
    empty row). The optional projection is applied after pooling, then x / max(‖x‖₂,
    1e-12).
    """

    def __init__(self, token_embedding, encoder, pooling="mean", projection=None,
                 adapter_side=None, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLING_OPTIONS:
            raise ValueError(f"pooling must be one of {POOLING_OPTIONS}, got {pooling!r}")
        self.token_embedding = token_embedding
        self.encoder = encoder
        self.pooling = pooling
        self.projection = projection
        self.adapter_side = adapter_side  # ADE-LoRA: whose adapters the shared encoder uses

    def get_config(self):
        config = super().get_config()
        config.update(
            token_embedding=keras.saving.serialize_keras_object(self.token_embedding),
            encoder=keras.saving.serialize_keras_object(self.encoder),
            pooling=self.pooling, adapter_side=self.adapter_side,
            projection=(None if self.projection is None
                        else keras.saving.serialize_keras_object(self.projection)))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("token_embedding", "encoder", "projection"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

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
        with adapter_side(self.adapter_side) if self.adapter_side else contextlib.nullcontext():
            sequence = self.encoder(embedded, padding_mask=mask, training=training)
        sequence = tf.cast(sequence, tf.float32)
        if self.pooling == "mean":
            weights = tf.cast(mask, tf.float32)[:, :, None]
            pooled = tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(
                tf.reduce_sum(weights, axis=1), 1.0)
        elif self.pooling == "last_token":
            last = tf.maximum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1) - 1, 0)
            pooled = tf.gather(sequence, last, axis=1, batch_dims=1)
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
