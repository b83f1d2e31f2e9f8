"""Training configuration: shipped YAML defaults, overrides, validation.

Every field is checked before any training starts; an error names the field
(``loss.same_tower``, ``training.global_batch_size``, ...).
"""

from __future__ import annotations

import copy
import os

import yaml

from samtone_tf.losses import SAME_TOWER_OPTIONS
from samtone_tf.models import ARCHITECTURES
from samtone_tf.towers import POOLING_OPTIONS

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, "configs", "default.yaml")


class ConfigError(ValueError):
    """An invalid configuration; the message names the field."""


def load_config(path=None, overrides=None):
    """Shipped defaults, updated by the YAML at ``path`` and by ``overrides``
    ({"section.key": value}); validated."""
    with open(DEFAULT_CONFIG, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    if path is not None:
        if not os.path.exists(path):
            raise ConfigError(f"config file {path!r} does not exist")
        with open(path, encoding="utf-8") as handle:
            user = yaml.safe_load(handle) or {}
        _merge(config, user, path)
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _merge(config, {section: {key: value}}, "command line")
    validate(config)
    return config


def _merge(base, update, source):
    if not isinstance(update, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of sections")
    for section, values in update.items():
        if section not in base:
            raise ConfigError(f"{source}: unknown section {section!r} "
                              f"(known: {', '.join(sorted(base))})")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        for key, value in values.items():
            if key not in base[section]:
                raise ConfigError(f"{source}: unknown key {section}.{key} (known: "
                                  f"{', '.join(sorted(base[section]))})")
            base[section][key] = value


def _positive_int(config, field, allow_none=False):
    section, key = field.split(".")
    value = config[section][key]
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{field} must be a positive integer, got {value!r}")


def validate(config, replicas=None):
    """Raises ConfigError naming the first invalid field."""
    data, model, loss, training = (config[s] for s in ("data", "model", "loss", "training"))
    from samtone_tf.data.loaders import FORMATS

    if data["format"] not in FORMATS:
        raise ConfigError(f"data.format must be one of {FORMATS}, got {data['format']!r}")
    if data["format"] == "tfds":
        if not data["path"]:
            raise ConfigError("data.path must name a prepared TFDS dataset (e.g. beir/scifact) "
                              "when data.format is tfds")
    elif data["path"] is not None and not os.path.isdir(data["path"]):
        raise ConfigError(f"data.path {data['path']!r} does not exist")
    negatives = data["hard_negatives"]
    if negatives not in (None, "bm25") and not os.path.isfile(str(negatives)):
        raise ConfigError(f"data.hard_negatives must be null, 'bm25' or a TREC run file, got "
                          f"{negatives!r}")
    if not isinstance(data["num_hard_negatives"], int) or data["num_hard_negatives"] < 0:
        raise ConfigError(f"data.num_hard_negatives must be an integer >= 0, got "
                          f"{data['num_hard_negatives']!r}")
    if data["num_hard_negatives"] and negatives is None:
        raise ConfigError("data.num_hard_negatives > 0 needs data.hard_negatives")
    if model["architecture"] not in ARCHITECTURES:
        raise ConfigError(f"model.architecture must be one of {ARCHITECTURES}, got "
                          f"{model['architecture']!r}")
    if model["pooling"] not in POOLING_OPTIONS:
        raise ConfigError(f"model.pooling must be one of {POOLING_OPTIONS}, got "
                          f"{model['pooling']!r}")
    tower = model["tower"]
    if (tower not in ("minilm", "small", "t5") and not str(tower).startswith("keras_hub:")
            and not os.path.isfile(os.path.join(str(tower), "config.json"))):
        raise ConfigError(f"model.tower must be 'minilm', 'small', 't5', 'keras_hub:PRESET' or a "
                          f"Hugging Face / keras-hub folder with config.json, got {tower!r}")
    if loss["same_tower"] not in SAME_TOWER_OPTIONS:
        raise ConfigError(f"loss.same_tower must be one of {SAME_TOWER_OPTIONS}, got "
                          f"{loss['same_tower']!r}")
    if loss["same_tower"] == "both" and not (loss["symmetric"] or loss["joint"]):
        raise ConfigError("loss.same_tower 'both' needs loss.symmetric or loss.joint")
    if loss["symmetric"] and loss["joint"]:
        raise ConfigError("loss.symmetric and loss.joint are exclusive")
    if not isinstance(loss["temperature"], (int, float)) or not 0.005 <= loss["temperature"] <= 1:
        raise ConfigError(f"loss.temperature must be in [0.005, 1], got {loss['temperature']!r}")
    for field in ("model.query_max_length", "model.document_max_length",
                  "training.global_batch_size", "training.epochs"):
        _positive_int(config, field)
    _positive_int(config, "training.steps", allow_none=True)
    _positive_int(config, "training.checkpoint_every")
    _positive_int(config, "model.projection_dim", allow_none=True)
    if not isinstance(training["learning_rate"], (int, float)) or training["learning_rate"] <= 0:
        raise ConfigError(f"training.learning_rate must be > 0, got {training['learning_rate']!r}")
    if replicas is not None and training["global_batch_size"] % replicas:
        raise ConfigError(f"training.global_batch_size {training['global_batch_size']} is not "
                          f"divisible by the {replicas} replicas of training.strategy "
                          f"{training['strategy']!r}")
    return config


def dump(config):
    return yaml.safe_dump(copy.deepcopy(config), sort_keys=False)
