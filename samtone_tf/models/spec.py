"""The interface every backbone spec implements (:class:`BackboneSpec`)."""

from __future__ import annotations

import abc


class BackboneSpec(abc.ABC):
    """The interface every backbone spec implements.

    Attributes: ``vocab_size``, ``hidden_dim``, ``max_length`` (positions), and
    optionally ``default_max_length`` (the length it was trained for) and a pretrained
    projection after pooling (``projection_matrix`` [hidden, ``projection_dim``]: the
    towers' projection starts from it)."""

    projection_dim = None
    projection_matrix = None

    @abc.abstractmethod
    def make_token_embedding(self, name="token_embedding"):
        """A fresh ``keras.layers.Embedding``."""

    @abc.abstractmethod
    def make_encoder(self, name="encoder"):
        """A fresh encoder body (token embeddings, padding mask) → sequence."""

    @abc.abstractmethod
    def make_tokenizer(self, max_length, pad_to_max_length=False):
        """An in-graph tokenizer: strings → {"token_ids", "padding_mask"} int32."""

    @abc.abstractmethod
    def initialize(self, token_embedding, encoder):
        """Copies the pretrained weights into fresh parts (no-op from scratch)."""

    def release(self):
        """Drops any cached checkpoint arrays (called once the towers hold them)."""

    @abc.abstractmethod
    def get_config(self):
        """The source and sizes: enough for ``from_config`` to make the same spec."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)
