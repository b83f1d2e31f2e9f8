"""Backbone specs trained from scratch: :class:`SmallTransformer` (hashing tokenizer) and
:class:`T5Encoder` (SentencePiece). They hold no checkpoint; their config is their sizes."""

from __future__ import annotations

import dataclasses

import keras

from samtone_tf.layers.encoders import T5TextEncoder, TransformerTextEncoder
from samtone_tf.models.spec import BackboneSpec
from samtone_tf.resources import spm_model_path
from samtone_tf.tokenizers.in_graph import HashingTokenizer, SentencePieceTokenizer


class _FromScratch(BackboneSpec):
    """Shared by from-scratch specs: a fresh token embedding, no weights to copy."""

    embedding_stddev = 0.02

    def make_token_embedding(self, name="token_embedding"):
        return keras.layers.Embedding(
            self.vocab_size, self.hidden_dim, name=name,
            embeddings_initializer=keras.initializers.TruncatedNormal(
                stddev=self.embedding_stddev))

    def initialize(self, token_embedding, encoder):
        """Pretrained specs copy weights here; a from-scratch tower keeps its init."""

    def get_config(self):
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@keras.saving.register_keras_serializable(package="samtone_tf")
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
        return HashingTokenizer(self.vocab_size, max_length, pad_to_max_length)


@keras.saving.register_keras_serializable(package="samtone_tf")
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
        return self.spm_model or spm_model_path()

    @property
    def vocab_size(self):
        import sentencepiece

        return sentencepiece.SentencePieceProcessor(model_file=self.model_path).vocab_size()

    def make_encoder(self, name="encoder"):
        return T5TextEncoder(self.hidden_dim, self.num_layers, self.num_heads,
                             self.intermediate_dim, dropout=self.dropout, name=name)

    def make_tokenizer(self, max_length, pad_to_max_length=False):
        return SentencePieceTokenizer(self.model_path, max_length, pad_to_max_length)
