"""Tower parts (Keras layers): the tower, the transformer text encoders (BERT-style, T5,
Gemma 3 and Qwen 3 decoder stacks), attention with an
additive padding bias, the CPU fast paths (fused dense + GELU, lean layer norm) and
recomputation of a layer in the backward pass."""

from samtone_tf.layers.attention import BiasMultiHeadAttention
from samtone_tf.layers.encoders import T5TextEncoder, TransformerTextEncoder
from samtone_tf.layers.fast_layers import FusedDense, FusedEinsumDense, LeanLayerNormalization
from samtone_tf.layers.gemma3 import Gemma3TextEncoder
from samtone_tf.layers.qwen3 import Qwen3TextEncoder
from samtone_tf.layers.tower import POOLING_OPTIONS, Tower

__all__ = ["BiasMultiHeadAttention", "FusedDense", "FusedEinsumDense", "Gemma3TextEncoder",
           "LeanLayerNormalization", "POOLING_OPTIONS", "Qwen3TextEncoder", "T5TextEncoder",
           "Tower", "TransformerTextEncoder"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # the other Keras classes, if Keras was first imported from here
