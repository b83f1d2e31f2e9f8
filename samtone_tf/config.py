"""Training configuration: shipped YAML defaults, overrides, validation.

Every field is checked before any training starts; an error names the field
(``loss.same_tower``, ``training.global_batch_size``, ...).
"""

from __future__ import annotations

import copy
import math
import os

import yaml

from samtone_tf.backbones import TOWER_NAMES, is_known_tower
from samtone_tf.losses import SAME_TOWER_OPTIONS
from samtone_tf.models import ARCHITECTURES
from samtone_tf.towers import POOLING_OPTIONS

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, "configs", "default.yaml")


from samtone_tf.errors import ConfigError  # noqa: E402,F401  (re-exported)


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


def _number(config, field, check, wanted):
    section, key = field.split(".")
    value = config[section][key]
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not check(value)):
        raise ConfigError(f"{field} must be {wanted}, got {value!r}")


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
    if not is_known_tower(model["tower"]):
        raise ConfigError(f"model.tower must be one of {', '.join(TOWER_NAMES)} (a folder with "
                          f"config.json), got {model['tower']!r}")
    if loss["same_tower"] not in SAME_TOWER_OPTIONS:
        raise ConfigError(f"loss.same_tower must be one of {SAME_TOWER_OPTIONS}, got "
                          f"{loss['same_tower']!r}")
    if loss["same_tower"] == "both" and not (loss["symmetric"] or loss["joint"]):
        raise ConfigError("loss.same_tower 'both' needs loss.symmetric or loss.joint")
    if loss["symmetric"] and loss["joint"]:
        raise ConfigError("loss.symmetric and loss.joint are exclusive")
    _number(config, "loss.temperature", lambda v: 0.005 <= v <= 1, "in [0.005, 1]")
    for field in ("training.global_batch_size", "training.epochs", "training.checkpoint_every",
                  "evaluation.k", "evaluation.batch_size"):
        _positive_int(config, field)
    for field in ("model.query_max_length", "model.document_max_length", "training.steps",
                  "model.projection_dim"):
        _positive_int(config, field, allow_none=True)
    for field in ("data.ignore_identical_ids", "loss.trainable_temperature", "loss.symmetric",
                  "loss.joint", "evaluation.zero_shot"):
        section, key = field.split(".")
        if not isinstance(config[section][key], bool):
            raise ConfigError(f"{field} must be true or false, got {config[section][key]!r}")
    _number(config, "training.learning_rate", lambda v: v > 0, "a finite number > 0")
    _number(config, "training.warmup_ratio", lambda v: 0 <= v <= 1, "a number in [0, 1]")
    if not isinstance(training["seed"], int) or isinstance(training["seed"], bool):
        raise ConfigError(f"training.seed must be an integer, got {training['seed']!r}")
    for field in ("data.train_split", "data.eval_split", "training.strategy"):
        section, key = field.split(".")
        if not isinstance(config[section][key], str) or not config[section][key]:
            raise ConfigError(f"{field} must be a non-empty string, got {config[section][key]!r}")
    if replicas is not None and training["global_batch_size"] % replicas:
        raise ConfigError(f"training.global_batch_size {training['global_batch_size']} is not "
                          f"divisible by the {replicas} replicas of training.strategy "
                          f"{training['strategy']!r}")
    return config


def dump(config):
    return yaml.safe_dump(copy.deepcopy(config), sort_keys=False)
