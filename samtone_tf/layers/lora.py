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
"""

from __future__ import annotations

import keras

TARGETS = ("query", "value")  # MultiHeadAttention's _query_dense, _value_dense


def check_lora(rank, alpha=None):
    """Raises ValueError unless ``rank`` is None or a positive integer and ``alpha`` is
    None or a positive number."""
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0):
        raise ValueError(f"lora_rank must be a positive integer or null, got {rank!r}")
    if alpha is not None:
        if rank is None:
            raise ValueError("lora_alpha needs lora_rank")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"lora_alpha must be a positive number, got {alpha!r}")


def attention_layers(layer):
    """The ``keras.layers.MultiHeadAttention`` layers inside ``layer``."""
    return [sub for sub in layer._flatten_layers(include_self=True)
            if isinstance(sub, keras.layers.MultiHeadAttention)]


def enable_lora(encoder, rank, alpha=None, targets=TARGETS):
    """Adds rank-``rank`` adapters to the ``targets`` projections of every attention
    layer of ``encoder`` (built); returns the adapted projection layers."""
    attention = attention_layers(encoder)
    if not attention:
        raise ValueError(f"LoRA needs an encoder with keras MultiHeadAttention layers; "
                         f"{type(encoder).__name__} has none")
    adapted = []
    for layer in attention:
        for target in targets:
            projection = getattr(layer, f"_{target}_dense")
            projection.enable_lora(rank, lora_alpha=alpha if alpha is not None else rank)
            adapted.append(projection)
    return adapted


def is_adapter(variable):
    return variable.path.rsplit("/", 1)[-1] in ("lora_kernel_a", "lora_kernel_b")


def freeze_all_but_adapters(*layers):
    """Marks every variable of ``layers`` that is not a LoRA adapter non-trainable."""
    for layer in layers:
        for variable in layer.weights:
            if not is_adapter(variable):
                variable.trainable = False
