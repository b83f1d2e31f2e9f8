"""What the decoder-family specs (Gemma 3, Qwen 3) share: a Hugging Face folder's config,
keras-hub's converter for the weights, fresh parts to copy them into, and a config that
rebuilds the spec without the folder."""

from __future__ import annotations

import contextlib
import io

import keras

from samtone_tf.models.pretrained import (_sentence_transformers_length, read_hf_config,
                                          sentence_transformers_projection)
from samtone_tf.models.spec import BackboneSpec


class DecoderSpec(BackboneSpec):
    """Base of the decoder-family specs. A subclass sets ``ENCODER_FIELDS``,
    ``encoder_class``, ``backbone_class`` (keras-hub's) and ``norm_name`` (its final norm
    layer), and implements ``encoder_fields(path, config)`` (refusing what the encoder
    cannot reproduce), ``read_tokenizer(path, config)``, ``make_tokenizer``,
    ``save_assets`` / ``load_assets`` and ``TOKENIZER_ATTRIBUTES`` (what the assets
    restore)."""

    ENCODER_FIELDS = ()
    TOKENIZER_ATTRIBUTES = ()
    OWN_FIELDS = ("vocab_size", "max_length", "default_max_length", "prefix", "suffix",
                  "pad_id", "projection_dim")
    _weights = None

    def __init__(self, folder, dropout=None):
        self.source = self.folder = str(folder)
        self._dropout = dropout
        path, config = read_hf_config(self.folder)
        for name, value in self.encoder_fields(path, config).items():
            setattr(self, name, value)
        if dropout is not None:
            self.dropout = dropout
        self.vocab_size = config["vocab_size"]
        self.max_length = config.get("max_position_embeddings", 32768)
        self.default_max_length = _sentence_transformers_length(self.folder, path)
        self.projection_matrix, self.projection_dim = sentence_transformers_projection(
            self.folder)
        self.read_tokenizer(path, config)

    def __repr__(self):
        return f"{type(self).__name__}({self.source!r})"

    def make_token_embedding(self, name="token_embedding"):
        return keras.layers.Embedding(self.vocab_size, self.hidden_dim, name=name)

    def make_encoder(self, name="encoder"):
        return self.encoder_class(**{f: getattr(self, f) for f in self.ENCODER_FIELDS},
                                  name=name)

    def _load(self):
        if self._weights is None:
            with contextlib.redirect_stdout(io.StringIO()):  # the converter's notices
                backbone = self.backbone_class.from_preset(self.folder, load_weights=True)
            self._weights = {
                "token": backbone.token_embedding.embeddings.numpy(),
                "layers": [layer.get_weights() for layer in backbone.transformer_layers],
                "norm": backbone.get_layer(self.norm_name).get_weights(),
            }
            del backbone
        return self._weights

    def initialize(self, token_embedding, encoder):
        weights = self._load()
        token_embedding.set_weights([weights["token"]])
        for layer, values in zip(encoder.transformer_layers, weights["layers"]):
            layer.set_weights(values)
        encoder.final_normalization.set_weights(weights["norm"])

    def release(self):
        self._weights = None

    def get_config(self):
        return {"folder": self.source, "dropout": self._dropout,
                "spec": {name: getattr(self, name)
                         for name in self.ENCODER_FIELDS + self.OWN_FIELDS}}

    @classmethod
    def from_config(cls, config):
        """The spec a saved model was built with, without its folder (the tokenizer
        comes from the ``.keras`` file's assets, the weights from the file)."""
        self = cls.__new__(cls)
        self.source = self.folder = str(config["folder"])
        self._dropout = config.get("dropout")
        self.projection_matrix, self.projection_dim = None, None
        for name, value in config["spec"].items():
            setattr(self, name, value)
        for name in cls.TOKENIZER_ATTRIBUTES:
            setattr(self, name, None)  # load_assets
        return self

    def check_tokenizer(self):
        if any(getattr(self, name) is None for name in self.TOKENIZER_ATTRIBUTES):
            raise ValueError(f"{self!r} has no tokenizer: it was rebuilt from a config "
                             "without its saved model's assets")
