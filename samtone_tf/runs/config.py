"""Typed job configuration: the shipped YAML defaults, user YAML, overrides.

The YAML maps onto typed sections (:class:`DataConfig`, :class:`ModelConfig`,
:class:`LossConfig`, :class:`TrainingConfig`, :class:`EvaluationConfig`) of one
:class:`JobConfig`. Each value is checked for its type here (``true``/``false`` only
for booleans, integers that are not booleans, finite numbers) and then validated
once, by the object that uses it: ``SamToNeLoss`` for the loss section,
``DualEncoder.check_arguments`` for the model's architecture, pooling and lengths, the
data loader's format list, the tower registry; this layer only adds the field name
to their message. Sections read as attributes (``config.loss.temperature``) or as
mappings (``config["loss"]["temperature"]``, ``SamToNeLoss(**config.loss)``).

Example:

>>> from samtone_tf.runs.config import load_config
>>> config = load_config(overrides={"loss.temperature": 0.1, "model.tower": "small"})
>>> config.loss.temperature, config["model"]["tower"], config.training.global_batch_size
(0.1, 'small', 32)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing

import yaml

from samtone_tf.data.loaders import FORMATS
from samtone_tf.errors import ConfigError
from samtone_tf.losses.samtone import SamToNeLoss
from samtone_tf.layers.lora import check_lora
from samtone_tf.models.backbones import TOWER_NAMES, is_known_tower
from samtone_tf.models.dual_encoder import DualEncoder
from samtone_tf.models.encoding import check_jit_compile
from samtone_tf.models.memory_policy import check_chunk, check_remat
from samtone_tf.tokenizers.padding import check_padding

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package
SEED_LIMIT = 2 ** 32  # NumPy's and TensorFlow's global seeds take 0 <= seed < 2**32


class _Loader(yaml.SafeLoader):
    """YAML with the scalar rules of YAML 1.2's core schema, which the docs state:
    booleans are ``true`` / ``false`` only (YAML 1.1's ``yes``, ``no``, ``on``, ``off``
    stay strings, and a boolean field refuses them), and ``2e-5`` is a number (YAML 1.1
    reads a float without a dot as a string)."""


_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver(  # after the integer resolver, which keeps "32" an int
    _FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))


def yaml_load(text):
    """Parses configuration YAML (a string or a stream) by the rules of :class:`_Loader`."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
DEFAULT_CONFIG = os.path.join(HERE, "configs", "default.yaml")


class _Section:
    """Attribute and mapping access over a dataclass section."""

    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, value):
        setattr(self, key, value)

    def keys(self):
        return [field.name for field in dataclasses.fields(self)]


@dataclasses.dataclass
class DataConfig(_Section):
    path: typing.Optional[str]
    format: str
    train_split: str
    eval_split: str
    ignore_identical_ids: bool
    hard_negatives: typing.Optional[str]
    num_hard_negatives: int
    triples: typing.Optional[str]
    padding: str


@dataclasses.dataclass
class ModelConfig(_Section):
    tower: str
    architecture: str
    pooling: str
    projection_dim: typing.Optional[int]
    query_max_length: typing.Optional[int]
    document_max_length: typing.Optional[int]
    query_prompt: typing.Optional[str]
    document_prompt: typing.Optional[str]
    lora_rank: typing.Optional[int]
    lora_alpha: typing.Optional[float]


@dataclasses.dataclass
class LossConfig(_Section):
    temperature: float
    trainable_temperature: bool
    same_tower: str
    symmetric: bool
    joint: bool
    matryoshka_dims: typing.Optional[list]
    binary_weight: float


@dataclasses.dataclass
class TrainingConfig(_Section):
    strategy: str
    global_batch_size: int
    epochs: int
    steps: typing.Optional[int]
    learning_rate: float
    warmup_ratio: float
    seed: int
    checkpoint_every: int
    gradient_cache_chunk_size: typing.Union[str, int, None]  # "auto" | null | N (validate)
    remat: typing.Union[str, bool]  # "auto" | true | false, checked in validate
    mixed_precision: typing.Optional[str]
    jit_compile: typing.Union[str, bool]  # "auto" | true | false, checked in validate
    steps_per_execution: int


@dataclasses.dataclass
class EvaluationConfig(_Section):
    zero_shot: bool
    k: int
    batch_size: int


@dataclasses.dataclass
class AnalysisConfig(_Section):
    every_steps: typing.Optional[int]
    pairs: int
    tsne: bool


MIXED_PRECISION = (None, "mixed_bfloat16", "mixed_float16")

SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig,
            "training": TrainingConfig, "evaluation": EvaluationConfig,
            "analysis": AnalysisConfig}


@dataclasses.dataclass
class JobConfig(_Section):
    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    training: TrainingConfig
    evaluation: EvaluationConfig
    analysis: AnalysisConfig

    def to_dict(self):
        return dataclasses.asdict(self)


def load_config(path=None, overrides=None):
    """Shipped defaults, updated by the YAML at ``path`` and by ``overrides``
    ({"section.key": value}); typed and validated (:class:`JobConfig`)."""
    with open(DEFAULT_CONFIG, encoding="utf-8") as handle:
        raw = yaml_load(handle)
    if path is not None:
        if not os.path.exists(path):
            raise ConfigError(f"config file {path!r} does not exist")
        with open(path, encoding="utf-8-sig") as handle:
            user = yaml_load(handle) or {}
        _merge(raw, user, path)
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _merge(raw, {section: {key: value}}, "command line")
    return validate(from_dict(raw))


def from_dict(raw):
    """A JobConfig from nested dicts, each value checked against its field's type."""
    sections = {}
    for name, cls in SECTIONS.items():
        values = raw[name]
        hints = typing.get_type_hints(cls)
        sections[name] = cls(**{
            field.name: _check_type(f"{name}.{field.name}", values[field.name],
                                    hints[field.name])
            for field in dataclasses.fields(cls)})
    return JobConfig(**sections)


def _number(value):
    """``value`` as a number when it is one or a string Python's ``float()`` reads
    ("2e-5", "1_000", " 3 "), else None. Booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check_type(field, value, hint):
    """``value`` checked against the field's type (numbers given in any spelling
    ``float()`` reads become numbers); raises ConfigError naming the field."""
    if typing.get_origin(hint) is typing.Union:
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(kinds) < len(typing.get_args(hint)):
            return value
        if len(kinds) > 1:  # "auto" or a value: validate() checks these fields
            return value
        hint = kinds[0]
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{field} must be true or false, got {value!r}")
    if hint is int:
        number = _number(value)
        if number is None or not math.isfinite(number) or number != int(number):
            raise ConfigError(f"{field} must be an integer, got {value!r}")
        return int(number)
    if hint is float:
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{field} must be a finite number, got {value!r}")
        return float(number) if isinstance(number, float) else number
    if hint is str and isinstance(value, dict):  # YAML read "query: x" as a mapping
        raise ConfigError(f"{field} must be a string, got the mapping {value!r}: quote text "
                          f"that holds ': ' (--set '{field}=\"query: \"')")
    if hint is str and (not isinstance(value, str) or not value):
        raise ConfigError(f"{field} must be a non-empty string, got {value!r}")
    return value


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


def _positive(field, value):
    if value is not None and value <= 0:
        raise ConfigError(f"{field} must be a positive integer, got {value!r}")


def validate(config, replicas=None):
    """Raises ConfigError naming the first invalid field; returns ``config``."""
    if isinstance(config, dict):
        config = from_dict(config)
    data, model, loss, training = config.data, config.model, config.loss, config.training
    if data.format not in FORMATS:
        raise ConfigError(f"data.format must be one of {FORMATS}, got {data.format!r}")
    if data.format == "tfds":
        if not data.path:
            raise ConfigError("data.path must name a prepared TFDS dataset (e.g. beir/scifact) "
                              "when data.format is tfds")
    elif data.path is not None and not os.path.isdir(data.path):
        raise ConfigError(f"data.path {data.path!r} does not exist")
    if data.hard_negatives not in (None, "bm25") and not os.path.isfile(data.hard_negatives):
        raise ConfigError(f"data.hard_negatives must be null, 'bm25' or a TREC run file, got "
                          f"{data.hard_negatives!r}")
    if data.num_hard_negatives < 0:
        raise ConfigError(f"data.num_hard_negatives must be an integer >= 0, got "
                          f"{data.num_hard_negatives!r}")
    if data.triples is not None:
        if not os.path.isfile(data.triples):
            raise ConfigError(f"data.triples must be null or an id triples file, got "
                              f"{data.triples!r}")
        if data.hard_negatives is not None or data.num_hard_negatives > 1:
            raise ConfigError("data.triples gives each example its one negative: use "
                              "data.num_hard_negatives 0 or 1 and data.hard_negatives null")
    elif data.num_hard_negatives and data.hard_negatives is None:
        raise ConfigError("data.num_hard_negatives > 0 needs data.hard_negatives")
    if not is_known_tower(model.tower):
        raise ConfigError(f"model.tower must be one of {', '.join(TOWER_NAMES)} (a folder with "
                          f"config.json), got {model.tower!r}")

    for section, check, value in (("training", check_jit_compile, training.jit_compile),
                                  ("data", check_padding, data.padding)):
        try:
            check(value)
        except ValueError as error:
            raise ConfigError(f"{section}.{error}") from None
    if training.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"training.mixed_precision must be null, "
                          f"{' or '.join(MIXED_PRECISION[1:])}, got {training.mixed_precision!r}")
    try:  # the objects that use the values validate them; we name the section
        DualEncoder.check_arguments(model.architecture, model.pooling, model.projection_dim,
                                    model.query_max_length, model.document_max_length)
        check_lora(model.lora_rank, model.lora_alpha, model.architecture)
    except ValueError as error:
        raise ConfigError(f"model.{error}") from None
    try:
        SamToNeLoss.check_arguments(**loss)
    except ValueError as error:
        raise ConfigError(f"loss.{error}") from None
    try:  # the model's own checks of its memory options
        check_remat(training.remat)
        check_chunk(training.gradient_cache_chunk_size)
    except ValueError as error:
        raise ConfigError(f"training.{error}") from None
    for field in ("global_batch_size", "epochs", "checkpoint_every", "steps",
                  "steps_per_execution"):
        _positive(f"training.{field}", training[field])
    for field in ("k", "batch_size"):
        _positive(f"evaluation.{field}", config.evaluation[field])
    _positive("analysis.every_steps", config.analysis.every_steps)
    if config.analysis.pairs < 10:
        raise ConfigError(f"analysis.pairs must be an integer >= 10, got {config.analysis.pairs!r}")
    if not 0 <= training.seed < SEED_LIMIT:
        raise ConfigError(f"training.seed must be an integer in [0, 2**32 - 1], got "
                          f"{training.seed!r}")
    if training.learning_rate <= 0:
        raise ConfigError(f"training.learning_rate must be a finite number > 0, got "
                          f"{training.learning_rate!r}")
    if not 0 <= training.warmup_ratio <= 1:
        raise ConfigError(f"training.warmup_ratio must be a number in [0, 1], got "
                          f"{training.warmup_ratio!r}")
    if replicas is not None and training.global_batch_size % replicas:
        raise ConfigError(f"training.global_batch_size {training.global_batch_size} is not "
                          f"divisible by the {replicas} replicas of training.strategy "
                          f"{training.strategy!r}")
    return config


def dump(config):
    """The YAML text of a configuration (what ``config.yaml`` of a run folder holds)."""
    if isinstance(config, JobConfig):
        config = config.to_dict()
    return yaml.safe_dump(config, sort_keys=False)
