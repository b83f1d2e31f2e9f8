"""Gemma 3 towers (EmbeddingGemma; the Gemma 3 text models) from a local Hugging Face
folder (``model_type: gemma3_text``).

The weights go through keras-hub's converter (``Gemma3Backbone.from_preset``) into a
fresh token embedding and :class:`~samtone_tf.layers.gemma3.Gemma3TextEncoder`, whose
layers follow the checkpoint's own ``layer_types`` and rotary wavelengths (keras-hub's
backbone assumes five sliding layers then one full one, and wavelengths 10k / 1M) and
mask bidirectional sliding windows as transformers does. The tokenizer is the folder's
SentencePiece model with the specials of its ``tokenizer.json`` template
(:class:`~samtone_tf.tokenizers.template.TemplateSentencePieceTokenizer`), saved in a
``.keras`` file's assets. What the encoder cannot reproduce is refused, naming the field.

EmbeddingGemma's sentence-transformers pipeline adds two bias-free dense layers after
pooling (``2_Dense``, ``3_Dense``); they compose into one matrix that starts the towers'
projection (:func:`~samtone_tf.models.pretrained.sentence_transformers_projection`).
"""

from __future__ import annotations

import os

import keras
import keras_hub

from samtone_tf.errors import DataError
from samtone_tf.layers.gemma3 import Gemma3TextEncoder
from samtone_tf.models.decoder import DecoderSpec
from samtone_tf.models.pretrained import read_spm_model
from samtone_tf.tokenizers.template import TemplateSentencePieceTokenizer, read_template

SPM_FILE = "tokenizer.model"
ENCODER_FIELDS = ("hidden_dim", "intermediate_dim", "head_dim", "num_query_heads",
                  "num_key_value_heads", "layer_types", "sliding_window", "rope_wavelengths",
                  "rope_scaling_factors", "bidirectional", "use_query_key_norm",
                  "use_post_attention_norm", "use_post_ffw_norm", "attention_logit_soft_cap",
                  "layer_norm_epsilon", "dropout")


@keras.saving.register_keras_serializable(package="samtone_tf")
class HFGemma3(DecoderSpec):
    """A pretrained Gemma 3 text tower from a Hugging Face folder (config.json,
    model.safetensors, tokenizer.model, tokenizer.json), loaded offline."""

    ENCODER_FIELDS = ENCODER_FIELDS
    TOKENIZER_ATTRIBUTES = ("spm_model",)
    encoder_class = Gemma3TextEncoder
    backbone_class = keras_hub.models.Gemma3Backbone
    norm_name = "final_normalization"

    def encoder_fields(self, path, config):
        return _encoder_fields(path, config)

    def read_tokenizer(self, path, config):
        self.pad_id = int(config.get("pad_token_id") or 0)
        self.spm_model = read_spm_model(self.folder, SPM_FILE)
        self.prefix, self.suffix = read_template(self.folder)

    def make_tokenizer(self, max_length, pad_to_max_length=False):
        self.check_tokenizer()
        return TemplateSentencePieceTokenizer(
            self.spm_model, self.prefix, self.suffix, pad_id=self.pad_id,
            max_length=max_length, pad_to_max_length=pad_to_max_length)

    def save_assets(self, folder):
        with open(os.path.join(folder, SPM_FILE), "wb") as handle:
            handle.write(self.spm_model)

    def load_assets(self, folder):
        with open(os.path.join(folder, SPM_FILE), "rb") as handle:
            self.spm_model = handle.read()


def _rope(path, config, kind):
    """(wavelength, linear scaling factor) of layer type ``kind``, from transformers 5's
    ``rope_parameters`` or the older ``rope_theta`` / ``rope_local_base_freq`` /
    ``rope_scaling``."""
    parameters = (config.get("rope_parameters") or {}).get(kind)
    if parameters is None:
        theta = (config.get("rope_local_base_freq", 10_000.0) if kind == "sliding_attention"
                 else config.get("rope_theta", 1_000_000.0))
        scaling = None if kind == "sliding_attention" else config.get("rope_scaling")
        parameters = {"rope_theta": theta, **(scaling or {"rope_type": "default"})}
    rope_type = parameters.get("rope_type", parameters.get("type", "default"))
    if rope_type not in ("default", "linear"):
        raise DataError(f"{path}: rope_type {rope_type!r} of {kind} layers is not supported "
                        "(default or linear)")
    return float(parameters["rope_theta"]), float(parameters.get("factor", 1.0))


def _encoder_fields(path, config):
    """The encoder's arguments from a Gemma 3 ``config.json``; refuses what it cannot
    reproduce, naming the field."""
    model_type = config.get("model_type")
    if model_type != "gemma3_text":
        raise DataError(f"{path}: model_type {model_type!r} is not gemma3_text (the text "
                        "model; multimodal gemma3 folders are not supported)")
    checks = {"hidden_activation": (config.get("hidden_activation", "gelu_pytorch_tanh"),
                                    "gelu_pytorch_tanh"),
              "attention_bias": (config.get("attention_bias", False), False),
              "query_pre_attn_scalar": (config.get("query_pre_attn_scalar", config["head_dim"]),
                                        config["head_dim"])}
    for field, (value, expected) in checks.items():
        if value != expected:
            raise DataError(f"{path}: {field} {value!r} is not supported (expected "
                            f"{expected!r}: keras-hub's Gemma 3 layers compute that way)")
    layers = config["num_hidden_layers"]
    pattern = config.get("sliding_window_pattern", config.get("_sliding_window_pattern", 6))
    layer_types = config.get("layer_types") or [
        "full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
        for i in range(layers)]
    if len(layer_types) != layers:
        raise DataError(f"{path}: layer_types has {len(layer_types)} entries for "
                        f"{layers} layers")
    ropes = {kind: _rope(path, config, kind) for kind in set(layer_types)}
    return {
        "hidden_dim": config["hidden_size"], "intermediate_dim": config["intermediate_size"],
        "head_dim": config["head_dim"], "num_query_heads": config["num_attention_heads"],
        "num_key_value_heads": config["num_key_value_heads"], "layer_types": layer_types,
        "sliding_window": int(config.get("sliding_window") or 4096),
        "rope_wavelengths": {kind: rope[0] for kind, rope in ropes.items()},
        "rope_scaling_factors": {kind: rope[1] for kind, rope in ropes.items()},
        "bidirectional": bool(config.get("use_bidirectional_attention", False)),
        "use_query_key_norm": True, "use_post_attention_norm": True,
        "use_post_ffw_norm": True,
        "attention_logit_soft_cap": config.get("attn_logit_softcapping"),
        "layer_norm_epsilon": config.get("rms_norm_eps", 1e-6),
        "dropout": config.get("attention_dropout", 0.0) or 0.0,
    }
