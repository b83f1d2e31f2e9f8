"""Low-rank adapters (LoRA, Hu et al. 2021) on a tower's attention projections.

Each adapted projection computes with W + (α / r) · A B, A [d_in, r] (He uniform), B [r,
d_out] (zeros), so an adapted tower starts equal to its base. The adapters are Keras'
own (``EinsumDense.enable_lora`` / ``Dense.enable_lora``, the mechanism keras-hub's
``Backbone.enable_lora`` uses), on the attention's query and value projections, the
projections keras-hub and PEFT adapt by default. Everything else of the token embedding
and the encoder is frozen: only the adapters (and a tower projection, if any) train,
and the base weights stay bit-identical.

Saving: the training checkpoints hold base and adapters apart; a ``.keras`` file holds
Keras' merged kernels (W + α/r · A B), and a model loaded from it starts new zero
adapters on the merged base (the same outputs). An exported SavedModel computes with
the adapters, i.e. exactly what was trained.

ADE-LoRA (``architecture="ade-lora"``): the two towers share one frozen base (token
embedding and encoder, one copy in memory and in the SavedModel) and each adapted
projection holds two adapter pairs, ``lora_query_{a,b}`` and ``lora_document_{a,b}``;
a tower selects its side around its encoder call (:func:`adapter_side`), so the query
tower computes with W + α/r · A_q B_q and the document tower with W + α/r · A_d B_d:
asymmetric towers for two adapters' parameters. A ``.keras`` file keeps base and both
adapter pairs apart.
"""

from __future__ import annotations

import contextlib
import threading

import keras

TARGETS = ("query", "value")  # MultiHeadAttention's _query_dense, keras-hub's query_dense
NO_ATTENTION = ("LoRA needs an encoder with keras MultiHeadAttention layers or keras-hub "
                "attention layers with query_dense / value_dense projections; {} has none")


def check_lora(rank, alpha=None, architecture=None):
    """Raises ValueError unless ``rank`` is None or a positive integer, ``alpha`` None or
    a positive number, and ``rank`` is set for ``architecture`` "ade-lora"."""
    if architecture == "ade-lora" and rank is None:
        raise ValueError("lora_rank must be set for the ade-lora architecture (two adapter "
                         "sets on one frozen base)")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0):
        raise ValueError(f"lora_rank must be a positive integer or null, got {rank!r}")
    if alpha is not None:
        if rank is None:
            raise ValueError("lora_alpha needs lora_rank")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"lora_alpha must be a positive number, got {alpha!r}")


def attention_layers(layer):
    """The attention layers inside ``layer``: ``keras.layers.MultiHeadAttention`` and
    keras-hub's decoder attentions, which hold their projections as ``query_dense`` /
    ``value_dense`` (Gemma 3) or ``_query_dense`` / ``_value_dense`` (Qwen 3)."""
    return [sub for sub in layer._flatten_layers(include_self=True)
            if isinstance(sub, keras.layers.MultiHeadAttention) or all(
                projection(sub, t) is not None for t in TARGETS)]


def projection(attention, target):
    """The ``target`` ("query", "value") projection of an attention layer, or None."""
    for name in (f"_{target}_dense", f"{target}_dense"):
        dense = getattr(attention, name, None)
        if isinstance(dense, (keras.layers.EinsumDense, keras.layers.Dense)):
            return dense
    return None


def enable_lora(encoder, rank, alpha=None, targets=TARGETS):
    """Adds rank-``rank`` adapters to the ``targets`` projections of every attention
    layer of ``encoder`` (built); returns the adapted projection layers."""
    attention = attention_layers(encoder)
    if not attention:
        raise ValueError(NO_ATTENTION.format(type(encoder).__name__))
    adapted = []
    for layer in attention:
        for target in targets:
            dense = projection(layer, target)
            dense.enable_lora(rank, lora_alpha=alpha if alpha is not None else rank)
            adapted.append(dense)
    return adapted


def is_adapter(variable):
    return variable.path.rsplit("/", 1)[-1].startswith("lora_")


def freeze_all_but_adapters(*layers):
    """Marks every variable of ``layers`` that is not a LoRA adapter non-trainable."""
    for layer in layers:
        for variable in layer.weights:
            if not is_adapter(variable):
                variable.trainable = False


SIDES = ("query", "document")
_ACTIVE = threading.local()


@contextlib.contextmanager
def adapter_side(side):
    """The adapter pair two-sided projections compute with inside the block."""
    previous = getattr(_ACTIVE, "side", None)
    _ACTIVE.side = side
    try:
        yield
    finally:
        _ACTIVE.side = previous


def current_side():
    """The side set by the innermost :func:`adapter_side` (None outside one)."""
    return getattr(_ACTIVE, "side", None)


class _TwoSided:
    """Mixed in before a built ``EinsumDense`` / ``Dense``'s class: its kernel is the
    base plus the active side's adapters (the base alone outside any side, e.g. when
    Keras saves it)."""

    @property
    def kernel(self):
        kernel = super().kernel
        side = current_side()
        if side is None:
            return kernel
        a, b = (getattr(self, f"lora_{side}_{part}") for part in "ab")
        delta = keras.ops.matmul(a, b) * (self.side_lora_alpha / self.side_lora_rank)
        return keras.ops.cast(keras.ops.add(kernel, delta), self.compute_dtype)

    def _side_adapters(self):
        return [getattr(self, f"lora_{side}_{part}") for side in SIDES for part in "ab"]

    def save_own_variables(self, store):
        super().save_own_variables(store)
        start = len(store.keys())
        for offset, variable in enumerate(self._side_adapters()):
            store[str(start + offset)] = variable

    def load_own_variables(self, store):
        super().load_own_variables(store)
        start = len(store.keys()) - 4
        for offset, variable in enumerate(self._side_adapters()):
            variable.assign(store[str(start + offset)])


_TWO_SIDED = {}


def _two_sided_class(base):
    if base not in _TWO_SIDED:
        _TWO_SIDED[base] = type(f"TwoSided{base.__name__}", (_TwoSided, base), {})
    return _TWO_SIDED[base]


def enable_two_sided_lora(encoder, rank, alpha=None, targets=TARGETS):
    """ADE-LoRA: a query and a document adapter pair (A He-uniform, B zeros) on the
    ``targets`` projections of every attention layer of ``encoder`` (built)."""
    attention = attention_layers(encoder)
    if not attention:
        raise ValueError(NO_ATTENTION.format(type(encoder).__name__))
    for layer in attention:
        for target in targets:
            dense = projection(layer, target)
            shape = tuple(dense._kernel.shape)
            dense._tracker.unlock()
            for side in SIDES:
                setattr(dense, f"lora_{side}_a", dense.add_weight(
                    name=f"lora_{side}_a", shape=shape[:-1] + (rank,),
                    initializer=keras.initializers.HeUniform(), regularizer=None))
                setattr(dense, f"lora_{side}_b", dense.add_weight(
                    name=f"lora_{side}_b", shape=(rank, shape[-1]), initializer="zeros",
                    regularizer=None))
            dense._tracker.lock()
            dense.side_lora_rank = rank
            dense.side_lora_alpha = alpha if alpha is not None else rank
            dense.__class__ = _two_sided_class(type(dense))


def adapt_towers(query_tower, document_tower, rank, alpha=None, two_sided=False):
    """Adapters on the towers' encoders (loaded), everything else of their token
    embeddings and encoders frozen; ``two_sided`` (ADE-LoRA): the towers share one
    encoder, which gets a query and a document adapter pair."""
    if two_sided:
        enable_two_sided_lora(query_tower.encoder, rank, alpha)
        freeze_all_but_adapters(query_tower.token_embedding, query_tower.encoder)
        return
    for tower in {id(t): t for t in (query_tower, document_tower)}.values():
        enable_lora(tower.encoder, rank, alpha)
        freeze_all_but_adapters(tower.token_embedding, tower.encoder)
