"""Rematerialisation of transformer layers, with dropout replayed exactly.

A training step keeps every layer's activations for the backward pass; for 256-token
documents the attention maps dominate (heads × L² floats per layer and row), so one
MiniLM step at batch 32 peaks at ≈ 6 GB on CPU. :func:`remat_call` runs one layer under
``tf.recompute_grad`` (what ``keras.remat`` is on the TensorFlow backend): the forward
pass keeps only the layer's input, and the backward pass runs the layer again to get
its activations. Memory: one layer's activations at a time plus each layer's input.
Cost: one more forward pass per step (≈ 1/3 of a step).

What ``keras.remat`` / ``keras.RematScope`` do not do, and this does: dropout. Keras
draws dropout masks from seed generators whose state advances at every call, so a
plain recomputation draws *new* masks and back-propagates through a different network
than the forward pass used. Here the layer's seed states are read once before the
forward call, and both runs of the layer (forward and recomputation) draw their seeds
from that read value, exactly as ``SeedGenerator.next()`` would (state, state + [0, 1],
...), without touching the state variables; after the forward call the states are
advanced as an ordinary call leaves them. The recomputation writes no variable, so
the two recomputations of a shared tower (query and document sides of SDE), which
TensorFlow may run in either order or at once, cannot disturb each other. The
gradients equal the ordinary step's (tested with dropout on, ``tests/test_remat.py``).

Example:

>>> import keras, numpy as np, tensorflow as tf
>>> layer = keras.layers.Dropout(0.5)
>>> x = tf.constant(np.ones((2, 4), "float32"))
>>> with tf.GradientTape() as tape:
...     tape.watch(x)
...     y = remat_call(layer, lambda h: layer(h, training=True), x)
>>> bool(tf.reduce_all(tape.gradient(y, x) == tf.cast(y != 0, "float32") * 2.0))
True
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from samtone_tf.internals import replaced_attribute
from samtone_tf.layers.keyed_dropout import current_keys, reenter_keys
from samtone_tf.layers.lora import adapter_side, current_side


def seed_generators(layer):
    """The Keras seed generators of ``layer`` and its sublayers (dropout's)."""
    found = {}
    for sub in layer._flatten_layers(include_self=True):
        for generator in getattr(sub, "_seed_generators", []):
            found[id(generator)] = generator
    return list(found.values())


def remat_call(layer, function, *inputs):
    """``function(*inputs)`` (a call of ``layer`` in training mode), keeping only
    ``inputs`` for the backward pass: ``function`` runs again there, drawing the same
    dropout seeds from ``layer``'s seed generators.

    Gradients flow to ``inputs`` and to the variables ``function`` reads; tensors it
    closes over (masks) get none, so pass everything differentiable as an input.
    Returns what ``function`` returns (a tensor or a tuple of them)."""
    generators = seed_generators(layer)
    saved = [tf.identity(generator.state.value) for generator in generators]
    draws = [0] * len(generators)

    keys = current_keys()  # the recomputation is traced outside the caller's block
    side = current_side()  # and outside the tower's adapter side (ADE-LoRA)

    def run(*xs):
        with contextlib.ExitStack() as stack:  # afterwards the class's own next() again
            if keys is not None:
                stack.enter_context(reenter_keys(keys))
            if side is not None:
                stack.enter_context(adapter_side(side))
            for index, (generator, value) in enumerate(zip(generators, saved)):
                stack.enter_context(replaced_attribute(generator, "next",
                                                       _replay(value, draws, index)))
            return function(*xs)

    outputs = tf.recompute_grad(run)(*inputs)
    for generator, value, count in zip(generators, saved, draws):
        if count:  # where an ordinary call leaves the state
            generator.state.assign(value + tf.constant([0, count], value.dtype))
    return outputs


def _replay(value, draws, index):
    """A stand-in for ``SeedGenerator.next`` that reads no variable: the n-th draw of
    a run returns value + [0, n], as n ordinary ``next()`` calls would."""
    count = [0]

    def next_(ordered=True):
        if not ordered:
            raise NotImplementedError("remat replays ordered seed draws only (dropout's)")
        seed = value + tf.constant([0, count[0]], value.dtype)
        count[0] += 1
        draws[index] = count[0]
        return seed

    return next_


def seed_states(model):
    """The model's random state (dropout seed generators): every variable that is not
    a weight. Checkpointed here; saved and restored around the gradient cache's passes."""
    weights = {id(w) for w in model.weights}
    return [v.value if hasattr(v, "value") else v for v in model.variables
            if id(v) not in weights]
