"""What pretrained specs share: fresh parts, the weight copy, saved-model assets.

:class:`_BertSpec` is the base of the BERT-body specs (:class:`~samtone_tf.models.backbones.HFBert`,
:class:`~samtone_tf.models.backbones.KerasHubBert`,
:class:`~samtone_tf.models.xlm_roberta.HFXLMRoberta`): their towers are samtone_tf's
:class:`~samtone_tf.layers.encoders.TransformerTextEncoder` with a checkpoint copied in.
"""

from __future__ import annotations

import os

import keras

from samtone_tf.errors import DataError
from samtone_tf.layers.encoders import TransformerTextEncoder
from samtone_tf.models.spec import BackboneSpec
from samtone_tf.tokenizers.in_graph import WordPieceTokenizer


_HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "relu": "relu"}


class _BertSpec(BackboneSpec):
    """Shared logic of pretrained BERT specs: fresh parts, weight copy, tokenizer.

    Subclasses set the architecture attributes and ``vocabulary`` / ``lowercase``,
    and implement ``_backbone()`` returning a keras-hub ``BertBackbone`` with the
    checkpoint's weights. The weights are read once and copied into each fresh token
    embedding / encoder, so ADE towers start as two copies of the checkpoint and
    shared parts are one copy.
    """

    _weights = None
    use_token_type = True  # BERT's token type 0 vector (XLM-R folds it into positions)

    def make_token_embedding(self, name="token_embedding"):
        return keras.layers.Embedding(self.vocab_size, self.hidden_dim, name=name)

    def make_encoder(self, name="encoder"):
        activation = self.activation
        if activation == "gelu_approximate":
            activation = _gelu_approximate
        return TransformerTextEncoder(
            self.hidden_dim, self.num_layers, self.num_heads, self.intermediate_dim,
            self.max_length, dropout=self.dropout, activation=activation,
            layer_norm_epsilon=self.layer_norm_epsilon, use_token_type=self.use_token_type,
            name=name)

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

    def release(self):
        self._weights = None

    # What a saved model needs to rebuild the spec without its source: the sizes and
    # tokenizer settings in the config, the vocabulary as an asset of the .keras file.
    SPEC_FIELDS = ("vocab_size", "hidden_dim", "num_layers", "num_heads", "intermediate_dim",
                   "max_length", "activation", "layer_norm_epsilon", "dropout", "lowercase",
                   "default_max_length", "projection_dim")
    VOCABULARY_ASSET = "vocabulary.txt"

    def get_config(self):
        return {self._source_key: self.source, "dropout": self._dropout,
                "spec": {name: getattr(self, name, None) for name in self.SPEC_FIELDS}}

    @classmethod
    def from_config(cls, config):
        """The spec a saved model was built with. With its ``spec`` (every file saved
        since the field exists) nothing is read from the source folder or preset, so a
        ``.keras`` file loads where they are absent; the vocabulary then comes from the
        file's assets (:meth:`load_assets`, called by Keras' loader through
        ``DualEncoder``). An older config without ``spec`` reads the source again."""
        config = dict(config)
        spec = config.pop("spec", None)
        if spec is None:
            return cls(**config)
        self = cls.__new__(cls)
        self.source = str(config[cls._source_key])
        setattr(self, cls._source_key, self.source)
        self._dropout = config.get("dropout")
        self.projection_matrix = None  # the .keras file's weights
        for name in cls.SPEC_FIELDS:
            setattr(self, name, spec.get(name))
        self.vocabulary = None  # load_assets
        return self

    def save_assets(self, folder):
        """Writes the vocabulary (one token a line) into a saved model's assets."""
        tokens = self.vocabulary
        if isinstance(tokens, str):
            with open(tokens, encoding="utf-8") as handle:
                tokens = [line.rstrip("\n") for line in handle]
        with open(os.path.join(folder, self.VOCABULARY_ASSET), "w", encoding="utf-8") as handle:
            handle.write("".join(token + "\n" for token in tokens))

    def load_assets(self, folder):
        """Reads the vocabulary written by :meth:`save_assets` (kept in memory: Keras
        removes the assets folder once the model is loaded)."""
        with open(os.path.join(folder, self.VOCABULARY_ASSET), encoding="utf-8") as handle:
            self.vocabulary = [line.rstrip("\n") for line in handle]

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
        if self.vocabulary is None:
            raise ValueError(f"{self!r} has no vocabulary: it was rebuilt from a config "
                             "without its saved model's assets")
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
        raise DataError(f"{path}: max_seq_length must be an integer >= 2, got {length!r}")
    return length


_ST_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
               "pooling_mode_lasttoken": "last_token"}


def _sentence_transformers_modules(folder):
    """(path of modules.json, [(module entry, its type's last name)]), empty without it."""
    import json
    import os

    path = os.path.join(folder, "modules.json")
    if not os.path.exists(path):
        return path, []
    with open(path, encoding="utf-8-sig") as handle:
        return path, [(m, str(m.get("type", "")).rsplit(".", 1)[-1]) for m in json.load(handle)]


def sentence_transformers_defaults(folder):
    """What a sentence-transformers folder says about its own use: ``pooling`` (from the
    Pooling module's config: mean, cls or last token) and ``query_prompt`` /
    ``document_prompt`` (``config_sentence_transformers.json``'s prompts named "query" and
    "document" or "passage"); only the keys the folder states. A pooling samtone_tf does
    not compute (max, weighted mean, several at once, prompts left out of the pooling) is
    refused, naming the file."""
    import json
    import os

    out = {}
    pooling_dir = next((module.get("path", "1_Pooling") for module, kind in
                        _sentence_transformers_modules(folder)[1] if kind == "Pooling"),
                       "1_Pooling")
    pooling_path = os.path.join(folder, pooling_dir, "config.json")
    if os.path.exists(pooling_path):
        with open(pooling_path, encoding="utf-8-sig") as handle:
            pooling = json.load(handle)
        modes = [key for key, value in pooling.items()
                 if key.startswith("pooling_mode_") and value]
        if len(modes) != 1 or modes[0] not in _ST_POOLING:
            raise DataError(f"{pooling_path}: pooling {modes} is not one of "
                            f"{sorted(_ST_POOLING)}")
        if pooling.get("include_prompt", True) is False:
            raise DataError(f"{pooling_path}: include_prompt false (the prompt's tokens left "
                            "out of the pooling) is not supported")
        out["pooling"] = _ST_POOLING[modes[0]]
    config_path = os.path.join(folder, "config_sentence_transformers.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8-sig") as handle:
            prompts = json.load(handle).get("prompts") or {}
        if "query" in prompts:
            out["query_prompt"] = prompts["query"]
        for name in ("document", "passage"):
            if name in prompts:
                out["document_prompt"] = prompts[name]
                break
    return out


def sentence_transformers_projection(folder):
    """(matrix [hidden, dim] float32, dim) of the dense layers a sentence-transformers
    folder applies after pooling (EmbeddingGemma: 768 → 3072 → 768), or (None, None).
    Layers without bias and activation compose into one matrix, which becomes the
    tower's bias-free projection; any other layer after pooling but ``Normalize`` (which
    every tower applies) is refused, naming its file."""
    import json
    import os

    import numpy as np

    modules_path, modules = _sentence_transformers_modules(folder)
    kinds = [kind for _, kind in modules]
    if "Pooling" not in kinds:
        return None, None
    matrix = None
    for module, kind in modules[kinds.index("Pooling") + 1:]:
        if kind == "Normalize":
            continue
        path = os.path.join(folder, module.get("path", ""))
        if kind != "Dense":
            raise DataError(f"{modules_path}: module {kind!r} after pooling is not supported "
                            "(Dense without bias and activation, Normalize)")
        with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
        activation = str(config.get("activation_function", "")).rsplit(".", 1)[-1]
        if config.get("bias", True) or activation != "Identity":
            raise DataError(f"{os.path.join(path, 'config.json')}: a Dense layer with bias "
                            f"{config.get('bias', True)} and activation {activation!r} is not "
                            "supported (no bias, Identity)")
        from safetensors.numpy import load_file

        weight = load_file(os.path.join(path, "model.safetensors"))["linear.weight"]
        weight = weight.astype(np.float64).T  # [in, out]
        matrix = weight if matrix is None else matrix @ weight
    if matrix is None:
        return None, None
    return matrix.astype(np.float32), int(matrix.shape[1])


def read_hf_config(folder):
    """(path, dict) of ``folder``'s ``config.json``; FileNotFoundError naming it."""
    import json

    path = os.path.join(str(folder), "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: not a Hugging Face model folder")
    with open(path, encoding="utf-8") as handle:
        return path, json.load(handle)


def read_spm_model(folder, name):
    """The bytes of ``folder``'s SentencePiece model file ``name``; DataError naming the
    folder when it is absent (the in-graph tokenizer needs it)."""
    path = os.path.join(str(folder), name)
    if not os.path.exists(path):
        raise DataError(f"{folder}: no {name}; the in-graph tokenizer needs the SentencePiece "
                        "model (tokenizer.json alone is not read)")
    with open(path, "rb") as handle:
        return handle.read()
