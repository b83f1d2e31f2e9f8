"""Qwen 3 towers (Qwen3-Embedding; the Qwen 3 text models) from a local Hugging Face
folder (``model_type: qwen3``).

The weights go through keras-hub's converter (``Qwen3Backbone.from_preset``) into a fresh
token embedding and :class:`~samtone_tf.layers.qwen3.Qwen3TextEncoder`; the tokenizer is
the folder's byte-level BPE (``tokenizer.json``: vocabulary, merges, Qwen's split pattern,
NFC) with the specials of its template, in the graph
(:class:`~samtone_tf.tokenizers.byte_level.ByteLevelBPETokenizer`), saved in a ``.keras``
file's assets. keras-hub's own ``Qwen3TextEmbedder`` appends ``<|im_end|>``; the template
of Qwen3-Embedding's ``tokenizer.json`` appends ``<|endoftext|>``, and that is what is
used. Qwen3-Embedding pools the last token: pass ``pooling="last_token"``. What the
encoder cannot reproduce is refused, naming the field.
"""

from __future__ import annotations

import json
import os

import keras
import keras_hub

from samtone_tf.errors import DataError
from samtone_tf.layers.qwen3 import Qwen3TextEncoder
from samtone_tf.models.decoder import DecoderSpec
from samtone_tf.tokenizers.byte_level import QWEN2_PATTERN, ByteLevelBPETokenizer
from samtone_tf.tokenizers.template import read_template

TOKENIZER_FILE = "tokenizer.json"
ENCODER_FIELDS = ("hidden_dim", "intermediate_dim", "head_dim", "num_query_heads",
                  "num_key_value_heads", "num_layers", "rope_max_wavelength",
                  "rope_scaling_factor", "layer_norm_epsilon", "dropout")


@keras.saving.register_keras_serializable(package="samtone_tf")
class HFQwen3(DecoderSpec):
    """A pretrained Qwen 3 text tower from a Hugging Face folder (config.json,
    model.safetensors, tokenizer.json), loaded offline."""

    ENCODER_FIELDS = ENCODER_FIELDS
    TOKENIZER_ATTRIBUTES = ("vocabulary", "merges")
    encoder_class = Qwen3TextEncoder
    backbone_class = keras_hub.models.Qwen3Backbone
    norm_name = "sequence_output_layernorm"

    def encoder_fields(self, path, config):
        return _encoder_fields(path, config)

    def read_tokenizer(self, path, config):
        self.vocabulary, self.merges = _read_bpe(os.path.join(self.folder, TOKENIZER_FILE))
        self.prefix, self.suffix = read_template(self.folder)
        pad = config.get("pad_token_id")
        self.pad_id = int(pad if pad is not None else (self.suffix or [0])[-1])

    def make_tokenizer(self, max_length, pad_to_max_length=False):
        self.check_tokenizer()
        return ByteLevelBPETokenizer(self.vocabulary, self.merges, self.prefix, self.suffix,
                                     pad_id=self.pad_id, max_length=max_length,
                                     pad_to_max_length=pad_to_max_length)

    def save_assets(self, folder):
        with open(os.path.join(folder, "bpe.json"), "w", encoding="utf-8") as handle:
            json.dump({"vocabulary": self.vocabulary, "merges": self.merges}, handle)

    def load_assets(self, folder):
        with open(os.path.join(folder, "bpe.json"), encoding="utf-8") as handle:
            saved = json.load(handle)
        self.vocabulary, self.merges = saved["vocabulary"], saved["merges"]


def _read_bpe(path):
    """(vocabulary, merges as "a b") of a byte-level BPE ``tokenizer.json``; refuses
    another model, normaliser or split pattern, naming it."""
    if not os.path.exists(path):
        raise DataError(f"{os.path.dirname(path)}: no {TOKENIZER_FILE}")
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise DataError(f"{path}: model type {model.get('type')!r} is not BPE")
    normalizer = spec.get("normalizer")
    if normalizer not in (None, {"type": "NFC"}):
        raise DataError(f"{path}: normalizer {normalizer!r} is not supported (NFC or none)")
    patterns = [p.get("pattern", {}).get("Regex") for p in
                (spec.get("pre_tokenizer") or {}).get("pretokenizers", [])
                if p.get("type") == "Split"]
    if patterns != [QWEN2_PATTERN]:
        raise DataError(f"{path}: pre-tokenizer split pattern {patterns!r} is not Qwen's "
                        "(the only one reproduced in the graph)")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    vocabulary = dict(model["vocab"])
    for token in spec.get("added_tokens", []):
        vocabulary.setdefault(token["content"], token["id"])
    return vocabulary, merges


def _encoder_fields(path, config):
    """The encoder's arguments from a Qwen 3 ``config.json``; refuses what it cannot
    reproduce, naming the field."""
    if config.get("model_type") != "qwen3":
        raise DataError(f"{path}: model_type {config.get('model_type')!r} is not qwen3")
    rope = config.get("rope_parameters") or {
        "rope_theta": config.get("rope_theta", 1_000_000.0),
        **(config.get("rope_scaling") or {"rope_type": "default"})}
    checks = {"hidden_act": (config.get("hidden_act", "silu"), "silu"),
              "attention_bias": (config.get("attention_bias", False), False),
              "use_sliding_window": (config.get("use_sliding_window", False), False),
              "rope_type": (rope.get("rope_type", rope.get("type", "default")), "default")}
    for field, (value, expected) in checks.items():
        if value != expected:
            raise DataError(f"{path}: {field} {value!r} is not supported (expected "
                            f"{expected!r}: keras-hub's Qwen 3 layers compute that way)")
    return {
        "hidden_dim": config["hidden_size"], "intermediate_dim": config["intermediate_size"],
        "head_dim": config["head_dim"], "num_query_heads": config["num_attention_heads"],
        "num_key_value_heads": config["num_key_value_heads"],
        "num_layers": config["num_hidden_layers"],
        "rope_max_wavelength": float(rope["rope_theta"]), "rope_scaling_factor": 1.0,
        "layer_norm_epsilon": config.get("rms_norm_eps", 1e-6),
        "dropout": config.get("attention_dropout", 0.0) or 0.0,
    }
