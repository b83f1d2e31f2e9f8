"""Loading the model a command names: a SavedModel, a run folder, a pretrained folder or
``minilm``; and the paths it reads (for the output checks)."""

from __future__ import annotations

import os

from samtone_tf.errors import ConfigError
from samtone_tf.export.saved_model import SavedModelEncoder
from samtone_tf.layers.tower import POOLING_OPTIONS
from samtone_tf.models import ARCHITECTURES, DualEncoder
from samtone_tf.models.backbones import MINILM_INSTALL_HINT, get_backbone, minilm_path
from samtone_tf.models.pretrained import sentence_transformers_defaults


def model_inputs(path):
    """The paths a ``--model`` / ``--checkpoint`` / ``--pretrained`` value reads (for
    the output checks): the folder itself, or the installed MiniLM's for 'minilm'."""
    if path == "minilm":
        return [minilm_path()] if minilm_path() else []
    return [path] if path else []


def load_encoder(path, query_max_length=None, document_max_length=None):
    if path == "minilm":  # the installed all-MiniLM-L6-v2, zero-shot

        if minilm_path() is None:
            raise ImportError(MINILM_INSTALL_HINT)
        path = minilm_path()
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return SavedModelEncoder(path)
    if os.path.exists(os.path.join(path, "savedmodel", "saved_model.pb")):
        return SavedModelEncoder(os.path.join(path, "savedmodel"))
    if os.path.exists(os.path.join(path, "config.json")):  # zero-shot pretrained folder
        return pretrained_model(path, "sde", query_max_length, document_max_length)
    raise FileNotFoundError(f"{path}: not a SavedModel, run folder or pretrained model folder")


def pretrained_model(folder, architecture, query_max_length, document_max_length,
                     pooling=None, query_prompt=None, document_prompt=None):
    """A DualEncoder of a pretrained folder at its own lengths, pooling and prompts (a
    sentence-transformers folder's, else mean pooling and no prompts) unless flags say
    otherwise."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"--architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    backbone = get_backbone(folder, fallback=False)
    own = sentence_transformers_defaults(backbone.folder) if hasattr(backbone, "folder") else {}
    pooling = pooling or own.get("pooling", "mean")
    query_prompt = own.get("query_prompt", "") if query_prompt is None else query_prompt
    document_prompt = (own.get("document_prompt", "") if document_prompt is None
                       else document_prompt)
    if pooling not in POOLING_OPTIONS:
        raise ConfigError(f"--pooling must be one of {POOLING_OPTIONS}, got {pooling!r}")
    try:
        return DualEncoder(backbone, architecture=architecture, pooling=pooling,
                           query_max_length=query_max_length,
                           document_max_length=document_max_length,
                           query_prompt=query_prompt or "",
                           document_prompt=document_prompt or "")
    except ValueError as error:  # a length beyond the backbone's positions
        raise ConfigError(f"--{str(error).replace('_', '-')}") from error
