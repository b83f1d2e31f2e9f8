"""XLM-RoBERTa-family towers (XLM-R, multilingual-E5, BGE-M3's encoder, ...) from a local
Hugging Face folder.

The encoder is BERT's post-LN body with two differences that the weights absorb:
positions start at ``pad_token_id + 1`` (Hugging Face skips the first two rows of
``position_embeddings``) and token type 0's vector (the only one the tokenizer gives) is added to every
position.
keras-hub's converter (``XLMRobertaBackbone.from_preset``) slices the rows and folds the
token type into the position table; its weights are copied into our encoder
(:class:`~samtone_tf.layers.encoders.TransformerTextEncoder` without a token-type vector),
so every architecture, LoRA and the fast CPU layers work as for BERT. The tokenizer is the
folder's SentencePiece model numbered the fairseq way
(:class:`~samtone_tf.tokenizers.fairseq.FairseqSentencePieceTokenizer`), saved in a
``.keras`` file's assets.

tests/test_families.py checks a tiny random XLM-R built with ``transformers`` (random
biases and norms): token ids equal the Hugging Face tokenizer's, and the exported
SavedModel's embeddings equal PyTorch's pooled hidden states for every pooling.
"""

from __future__ import annotations

import os

import keras
import keras_hub

from samtone_tf.errors import DataError
from samtone_tf.models.pretrained import (_HF_ACTIVATIONS, _BertSpec,
                                          _sentence_transformers_length, read_hf_config,
                                          read_spm_model, sentence_transformers_projection)
from samtone_tf.tokenizers.fairseq import FairseqSentencePieceTokenizer

SPM_FILE = "sentencepiece.bpe.model"


@keras.saving.register_keras_serializable(package="samtone_tf")
class HFXLMRoberta(_BertSpec):
    """A pretrained XLM-RoBERTa-family tower from a Hugging Face folder (config.json with
    ``model_type: xlm-roberta``, model.safetensors, sentencepiece.bpe.model), loaded
    offline through keras-hub. ``max_length`` is ``max_position_embeddings - 2`` (514 →
    512); ``default_max_length`` the folder's sentence-transformers ``max_seq_length``."""

    _source_key = "folder"
    use_token_type = False
    SPEC_FIELDS = tuple(f for f in _BertSpec.SPEC_FIELDS if f != "lowercase")
    MODEL_ASSET = SPM_FILE

    def __init__(self, folder, dropout=None):
        self.source = self.folder = str(folder)
        self._dropout = dropout
        config_path, config = read_hf_config(self.folder)
        _check_config(config_path, config)
        self.spm_model = read_spm_model(self.folder, SPM_FILE)
        self.vocab_size = config["vocab_size"]
        self.hidden_dim = config["hidden_size"]
        self.num_layers = config["num_hidden_layers"]
        self.num_heads = config["num_attention_heads"]
        self.intermediate_dim = config["intermediate_size"]
        self.max_length = config["max_position_embeddings"] - 2
        self.default_max_length = _sentence_transformers_length(self.folder, config_path)
        self.activation = _HF_ACTIVATIONS[config.get("hidden_act", "gelu")]
        self.layer_norm_epsilon = config.get("layer_norm_eps", 1e-5)
        self.dropout = config.get("hidden_dropout_prob", 0.1) if dropout is None else dropout
        self.projection_matrix, self.projection_dim = sentence_transformers_projection(
            self.folder)

    def __repr__(self):
        return f"HFXLMRoberta({self.source!r})"

    @classmethod
    def from_config(cls, config):
        self = super().from_config(config)
        if "spec" in config:
            self.spm_model = None  # load_assets
        return self

    def _load(self):
        if self._weights is None:
            backbone = keras_hub.models.XLMRobertaBackbone.from_preset(self.folder,
                                                                      load_weights=True)
            embeddings = backbone.get_layer("embeddings")
            self._weights = {
                "token": embeddings.token_embedding.get_weights(),
                # positions from pad_token_id + 1, token type 0 folded in (keras-hub)
                "position": embeddings.position_embedding.get_weights(),
                "norm": backbone.get_layer("embeddings_layer_norm").get_weights(),
                "layers": [layer.get_weights() for layer in backbone.transformer_layers],
            }
            del backbone
        return self._weights

    def initialize(self, token_embedding, encoder):
        weights = self._load()
        token_embedding.set_weights(weights["token"])
        encoder.position_embedding.set_weights(weights["position"])
        encoder.embeddings_layer_norm.set_weights(weights["norm"])
        for layer, values in zip(encoder.transformer_layers, weights["layers"]):
            layer.set_weights(values)

    def save_assets(self, folder):
        with open(os.path.join(folder, self.MODEL_ASSET), "wb") as handle:
            handle.write(self.spm_model)

    def load_assets(self, folder):
        with open(os.path.join(folder, self.MODEL_ASSET), "rb") as handle:
            self.spm_model = handle.read()

    def make_tokenizer(self, max_length, pad_to_max_length=False):
        if self.spm_model is None:
            raise ValueError(f"{self!r} has no SentencePiece model: it was rebuilt from a "
                             "config without its saved model's assets")
        return FairseqSentencePieceTokenizer(self.spm_model, max_length=max_length,
                                             pad_to_max_length=pad_to_max_length)


def _check_config(path, config):
    """Refuses what the encoder cannot reproduce, naming the field."""
    checks = {
        "position_embedding_type": (config.get("position_embedding_type", "absolute"),
                                    "absolute"),
        "pad_token_id": (config.get("pad_token_id", 1), 1),
    }
    for field, (value, expected) in checks.items():
        if value != expected:
            raise DataError(f"{path}: {field} {value!r} is not supported (expected "
                            f"{expected!r}: positions start at pad_token_id + 1)")
    activation = config.get("hidden_act", "gelu")
    if activation not in _HF_ACTIVATIONS:
        raise DataError(f"{path}: unsupported hidden_act {activation!r}")
