"""Tower parts (Keras layers): the tower, the transformer text encoders, attention with an
additive padding bias, the CPU fast paths (fused dense + GELU, lean layer norm) and
recomputation of a layer in the backward pass."""

from samtone_tf.layers.attention import BiasMultiHeadAttention
from samtone_tf.layers.encoders import T5TextEncoder, TransformerTextEncoder
from samtone_tf.layers.fast_layers import FusedDense, FusedEinsumDense, LeanLayerNormalization
from samtone_tf.layers.tower import POOLING_OPTIONS, Tower

__all__ = ["BiasMultiHeadAttention", "FusedDense", "FusedEinsumDense", "LeanLayerNormalization",
           "POOLING_OPTIONS", "T5TextEncoder", "Tower", "TransformerTextEncoder"]
