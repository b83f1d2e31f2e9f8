"""Gemma 3's decoder stack as a tower body (EmbeddingGemma and the Gemma 3 text models).

Over already-embedded tokens: x₀ = e · √hidden (Gemma scales its embeddings), then
keras-hub's ``Gemma3DecoderBlock`` per layer (RMS pre/post norms, grouped-query attention
with query/key norms and rotary positions, gated GELU feed-forward), then the final RMS
norm. Each layer is a sliding-window or a full-attention layer as the checkpoint's
``layer_types`` say, with that type's rotary wavelength.

Bidirectional sliding windows (EmbeddingGemma): Hugging Face's ``Gemma3TextModel`` lets
token i see token j when |i − j| ≤ w // 2 (``config.json``'s ``sliding_window`` w;
transformers halves it on load), while keras-hub's attention sees j − i from −(w − w//2 − 1)
to w//2, one token fewer on the left: texts longer than w // 2 tokens then differ.
:class:`HFWindowGemma3Attention` masks as transformers does (tests/test_families.py
compares texts longer than the window with PyTorch).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from samtone_tf.internals import gemma3_parts, retype
from samtone_tf.layers.remat import remat_call

Gemma3DecoderBlock, RMSNormalization, CachedGemma3Attention = gemma3_parts()
LAYER_TYPES = ("sliding_attention", "full_attention")


class HFWindowGemma3Attention(CachedGemma3Attention):
    """keras-hub's Gemma 3 attention with Hugging Face's bidirectional sliding window:
    |i − j| ≤ sliding_window_size // 2."""

    def _compute_bidirectional_sliding_mask(self, batch_size, sequence_length):
        positions = tf.range(sequence_length)
        distance = tf.abs(positions[:, None] - positions[None, :])
        mask = distance <= self.sliding_window_size // 2
        return tf.broadcast_to(mask[None], (batch_size, sequence_length, sequence_length))


@keras.saving.register_keras_serializable(package="samtone_tf")
class Gemma3TextEncoder(keras.layers.Layer):
    """Gemma 3's decoder stack over already-embedded tokens → [batch, length, hidden]
    (see the module). ``layer_types``: one of :data:`LAYER_TYPES` per layer;
    ``rope_wavelengths`` / ``rope_scaling_factors``: per layer type."""

    def __init__(self, hidden_dim, intermediate_dim, head_dim, num_query_heads,
                 num_key_value_heads, layer_types, sliding_window, rope_wavelengths,
                 rope_scaling_factors=None, bidirectional=True, use_query_key_norm=True,
                 use_post_attention_norm=True, use_post_ffw_norm=True,
                 attention_logit_soft_cap=None, layer_norm_epsilon=1e-6, dropout=0.0,
                 remat=False, **kwargs):
        super().__init__(**kwargs)
        unknown = sorted(set(layer_types) - set(LAYER_TYPES))
        if unknown:
            raise ValueError(f"layer_types must be among {LAYER_TYPES}, got {unknown}")
        self.config = dict(
            hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, head_dim=head_dim,
            num_query_heads=num_query_heads, num_key_value_heads=num_key_value_heads,
            layer_types=list(layer_types), sliding_window=sliding_window,
            rope_wavelengths=dict(rope_wavelengths),
            rope_scaling_factors=dict(rope_scaling_factors or {}),
            bidirectional=bidirectional, use_query_key_norm=use_query_key_norm,
            use_post_attention_norm=use_post_attention_norm,
            use_post_ffw_norm=use_post_ffw_norm,
            attention_logit_soft_cap=attention_logit_soft_cap,
            layer_norm_epsilon=layer_norm_epsilon, dropout=dropout)
        self.hidden_dim = hidden_dim
        self.num_layers = len(layer_types)
        self.remat = bool(remat)
        self.transformer_layers = [
            Gemma3DecoderBlock(
                hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, head_dim=head_dim,
                num_query_heads=num_query_heads, num_key_value_heads=num_key_value_heads,
                query_head_dim_normalize=True, use_query_key_norm=use_query_key_norm,
                use_post_ffw_norm=use_post_ffw_norm,
                use_post_attention_norm=use_post_attention_norm, gate_dim_reduction=1,
                logit_soft_cap=attention_logit_soft_cap,
                use_sliding_window_attention=kind == "sliding_attention",
                sliding_window_size=sliding_window, layer_norm_epsilon=layer_norm_epsilon,
                rope_wavelength=float(rope_wavelengths[kind]),
                rope_scaling_factor=float(self.config["rope_scaling_factors"].get(kind, 1.0)),
                use_bidirectional_attention=bidirectional, dropout=dropout,
                name=f"decoder_block_{i}")
            for i, kind in enumerate(layer_types)]
        self.final_normalization = RMSNormalization(epsilon=layer_norm_epsilon,
                                                    name="final_normalization")

    def build(self, input_shape):
        for layer in self.transformer_layers:
            layer.build(input_shape)
            matched = isinstance(layer.attention, HFWindowGemma3Attention) or retype(
                layer.attention, HFWindowGemma3Attention)
            if not matched and (
                    self.config["bidirectional"] and layer.use_sliding_window_attention):
                # keras-hub's own window would give other embeddings past w // 2 tokens
                raise TypeError(f"{type(layer.attention).__name__} is not keras-hub 0.32's "
                                "CachedGemma3Attention: its bidirectional sliding window "
                                "cannot be masked as transformers masks it")
        self.final_normalization.build(input_shape)
        self.built = True

    def call(self, token_embeddings, padding_mask, training=None):
        x = token_embeddings * tf.cast(tf.sqrt(float(self.hidden_dim)), token_embeddings.dtype)
        mask = tf.cast(padding_mask, "int32")
        for layer in self.transformer_layers:
            if self.remat and training:
                x = remat_call(layer, lambda h, layer=layer: layer(h, padding_mask=mask), x)
            else:
                x = layer(x, padding_mask=mask)
        return self.final_normalization(x)

    def get_config(self):
        config = super().get_config()
        config.update(self.config, remat=self.remat)
        return config
