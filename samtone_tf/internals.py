"""The one module that reaches into private parts of TensorFlow, Keras and keras-hub.

Every other module uses public APIs only (``tests/test_layout.py`` checks it). Each use
below says what it is, why no public API does it, and what happens where it is missing:

* :data:`AutoTrackable` (``tf.__internal__.tracking.AutoTrackable``): the base of the
  exported SavedModel objects. ``tf.Module`` would do, except that it defines
  ``variables`` / ``trainable_variables`` as properties, while TF-Hub's reusable
  SavedModel API wants them as plain saved attributes. Missing → ImportError naming it.
* :func:`t5_layers`: keras-hub's ``T5LayerNorm`` and ``T5TransformerLayer``, which it
  uses inside ``T5Backbone`` but does not export. Missing → ImportError naming it.
* :func:`gemma3_parts`: keras-hub's ``Gemma3DecoderBlock``, ``RMSNormalization`` and
  ``CachedGemma3Attention``, which ``Gemma3Backbone`` uses but keras-hub does not export;
  the Gemma 3 tower stacks the blocks over its own token embedding. Missing → ImportError
  naming them.
* :func:`qwen3_parts`: keras-hub's ``Qwen3TransformerDecoder`` and ``Qwen3LayerNorm``
  (used by ``Qwen3Backbone``, not exported), for the Qwen 3 tower's body.
* :func:`bpe_merge`: keras-hub's ``BytePairTokenizer`` merges words in the graph
  (byte-to-unicode mapping, merge ranks, a cache) but splits texts with GPT-2's pattern
  inside ``tokenize``; Qwen's pattern differs, so the byte-level tokenizer splits first
  and hands the words to the layer's merge step (``_bpe_merge_and_update_cache_tf``,
  ``cache``, ``token_to_id_map``). Missing → ImportError naming them.
* :func:`retype`: switches a built Keras layer to a subclass that only overrides its
  computation (the CPU fast paths of :mod:`samtone_tf.layers`); done only when the
  layer's class is exactly the subclass's base, so another keras-hub version that builds
  other classes keeps its own layers (the fallback: Keras' computation, same results).
* :func:`replaced_attribute`: sets an attribute on one object for the length of a block
  (remat's replay of a seed generator's ``next``), then removes it so the class's own
  method is seen again.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

try:
    AutoTrackable = tf.__internal__.tracking.AutoTrackable
except AttributeError as error:  # pragma: no cover (every supported TensorFlow has it)
    raise ImportError("samtone_tf needs tf.__internal__.tracking.AutoTrackable (TensorFlow "
                      f"2.13 and later); this TensorFlow {tf.__version__} lacks it") from error


def t5_layers():
    """(T5LayerNorm, T5TransformerLayer) of keras-hub (not exported by it)."""
    try:
        from keras_hub.src.models.t5.t5_layer_norm import T5LayerNorm
        from keras_hub.src.models.t5.t5_transformer_layer import T5TransformerLayer
    except ImportError as error:
        import keras_hub

        raise ImportError(f"the T5 tower needs keras-hub's T5 layers, which keras-hub "
                          f"{keras_hub.__version__} does not have where 0.32 had them") from error
    return T5LayerNorm, T5TransformerLayer


def gemma3_parts():
    """(Gemma3DecoderBlock, RMSNormalization, CachedGemma3Attention) of keras-hub."""
    try:
        from keras_hub.src.models.gemma3.gemma3_attention import CachedGemma3Attention
        from keras_hub.src.models.gemma3.gemma3_decoder_block import Gemma3DecoderBlock
        from keras_hub.src.models.gemma3.gemma3_layers import RMSNormalization
    except ImportError as error:
        import keras_hub

        raise ImportError(f"the Gemma 3 tower needs keras-hub's Gemma 3 layers, which "
                          f"keras-hub {keras_hub.__version__} does not have where 0.32 had "
                          "them") from error
    return Gemma3DecoderBlock, RMSNormalization, CachedGemma3Attention


def qwen3_parts():
    """(Qwen3TransformerDecoder, Qwen3LayerNorm) of keras-hub."""
    try:
        from keras_hub.src.models.qwen3.qwen3_decoder import Qwen3TransformerDecoder
        from keras_hub.src.models.qwen3.qwen3_layernorm import Qwen3LayerNorm
    except ImportError as error:
        import keras_hub

        raise ImportError(f"the Qwen 3 tower needs keras-hub's Qwen 3 layers, which "
                          f"keras-hub {keras_hub.__version__} does not have where 0.32 had "
                          "them") from error
    return Qwen3TransformerDecoder, Qwen3LayerNorm


def bpe_merge(tokenizer, words):
    """Ids [N, None] (ragged) of the byte-level BPE pieces of ``words`` ([N] strings,
    already split) by keras-hub's ``BytePairTokenizer`` ``tokenizer`` (see the module)."""
    needed = ("_bpe_merge_and_update_cache_tf", "cache", "token_to_id_map")
    if not all(hasattr(tokenizer, name) for name in needed):
        import keras_hub

        raise ImportError(f"keras-hub {keras_hub.__version__}'s BytePairTokenizer lacks "
                          f"{needed}, which 0.32 had")
    tokenizer._maybe_initialized_tf()
    found = tokenizer.cache.lookup(words)
    unseen = (found == "") & (words != "")

    def merge_unseen():
        tokenizer._bpe_merge_and_update_cache_tf(tf.boolean_mask(words, unseen))
        return tokenizer.cache.lookup(words)

    merged = tf.cond(tf.reduce_any(unseen), merge_unseen, lambda: found)
    pieces = tf.strings.split(merged, sep=" ")
    return tokenizer.token_to_id_map.lookup(pieces)


def retype(layer, subclass):
    """Makes ``layer`` an instance of ``subclass`` when its class is exactly
    ``subclass``'s direct base (the subclass overrides computation only, holds no state
    of its own); returns True then, False (layer unchanged) otherwise."""
    if type(layer) is not subclass.__bases__[0]:
        return False
    layer.__class__ = subclass
    return True


@contextlib.contextmanager
def replaced_attribute(obj, name, value):
    """``obj.name = value`` inside the block; afterwards the attribute is deleted, so the
    class's own attribute is seen again."""
    setattr(obj, name, value)
    try:
        yield
    finally:
        delattr(obj, name)


@contextlib.contextmanager
def global_dtype_policy(policy):
    """Layers created inside take ``policy`` (Keras gives a new layer the global policy)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
