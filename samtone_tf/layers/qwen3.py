"""Qwen 3's decoder stack as a tower body (Qwen3-Embedding; the Qwen 3 text models).

Over already-embedded tokens: keras-hub's ``Qwen3TransformerDecoder`` per layer (RMS
pre-norms, grouped-query causal attention with query/key RMS norms and rotary positions,
SiLU-gated feed-forward), then the final RMS norm. Causal as Qwen3-Embedding is: each
token sees itself and the tokens before it, so its embedding pools the last token
(``pooling="last_token"``); the tokenizers pad on the right, so padding never reaches a
real token.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from samtone_tf.internals import qwen3_parts
from samtone_tf.layers.remat import remat_call

Qwen3TransformerDecoder, Qwen3LayerNorm = qwen3_parts()


@keras.saving.register_keras_serializable(package="samtone_tf")
class Qwen3TextEncoder(keras.layers.Layer):
    """Qwen 3's decoder stack over already-embedded tokens → [batch, length, hidden]."""

    def __init__(self, hidden_dim, intermediate_dim, head_dim, num_query_heads,
                 num_key_value_heads, num_layers, rope_max_wavelength=1_000_000.0,
                 rope_scaling_factor=1.0, layer_norm_epsilon=1e-6, dropout=0.0, remat=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.config = dict(
            hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, head_dim=head_dim,
            num_query_heads=num_query_heads, num_key_value_heads=num_key_value_heads,
            num_layers=num_layers, rope_max_wavelength=rope_max_wavelength,
            rope_scaling_factor=rope_scaling_factor, layer_norm_epsilon=layer_norm_epsilon,
            dropout=dropout)
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.remat = bool(remat)
        self.transformer_layers = [
            Qwen3TransformerDecoder(
                intermediate_dim=intermediate_dim, head_dim=head_dim,
                num_query_heads=num_query_heads, num_key_value_heads=num_key_value_heads,
                rope_max_wavelength=rope_max_wavelength,
                rope_scaling_factor=rope_scaling_factor, layer_norm_epsilon=layer_norm_epsilon,
                activation="silu", dropout=dropout, name=f"transformer_layer_{i}")
            for i in range(num_layers)]
        self.final_normalization = Qwen3LayerNorm(epsilon=layer_norm_epsilon,
                                                  name="sequence_output_layernorm")

    def build(self, input_shape):
        for layer in self.transformer_layers:
            layer.build(input_shape)
        self.final_normalization.build(input_shape)
        self.built = True

    def call(self, token_embeddings, padding_mask, training=None):
        x, mask = token_embeddings, tf.cast(padding_mask, "int32")
        for layer in self.transformer_layers:
            if self.remat and training:
                x = remat_call(layer, lambda h, layer=layer: layer(
                    h, decoder_padding_mask=mask, training=True), x)
            else:
                x = layer(x, decoder_padding_mask=mask, training=training)
        return self.final_normalization(x)

    def get_config(self):
        config = super().get_config()
        config.update(self.config, remat=self.remat)
        return config
