"""The job's memory policy: which step saves memory where, and what is released between
the job's phases. The policy changes how a step is computed, never what it computes."""

from __future__ import annotations

import keras

from samtone_tf.devices import has_accelerator
from samtone_tf.heap import collect
from samtone_tf.models.memory_policy import resolve_chunk, resolve_remat



def memory_options(training, strategy, log=print):
    """``(remat, gradient_cache_chunk_size)`` for the model from ``training.remat`` and
    ``training.gradient_cache_chunk_size`` ("auto", the default of both, resolved as
    :mod:`samtone_tf.models.memory_policy` says, with the job's batch; other values pass
    through), logged: a memory knob that never changes the result."""
    remat, chunk = training["remat"], training["gradient_cache_chunk_size"]
    if "auto" not in (remat, chunk):
        return remat, chunk
    per_replica = training["global_batch_size"] // strategy.num_replicas_in_sync
    remat = resolve_remat(remat)
    chunk = resolve_chunk(chunk, per_replica, training["global_batch_size"])
    host = not has_accelerator()
    log(f"memory: training.remat {training['remat']} → {remat}, "
        f"training.gradient_cache_chunk_size {training['gradient_cache_chunk_size']} → "
        f"{chunk} ({'no GPU/TPU' if host else 'GPU/TPU'}, {per_replica} rows per replica)")
    return remat, chunk


def release_training_memory(model):
    """Frees what only the training steps used, before the job evaluates and exports:
    Keras' traced train function (its graphs and kernels) and, where the C library is
    glibc, the heap pages freed since (``malloc_trim``; elsewhere nothing more): 0.26-0.37
    GB after MiniLM's steps (``benchmarks/memory.py --breakdown``, two machines). Weights
    and optimizer state stay; a later ``fit`` traces the step again."""
    model.train_function = None
    collect()


def release_optimizer_state(model):
    """Frees the optimizer's state (Adam: two slots per weight, 0.18 GB for MiniLM) once
    training is over: the model is compiled again, with the same loss, for a stateless
    SGD, so nothing refers to the old optimizer any more (``del model.optimizer`` or
    ``= None`` leave it in Keras' compile config); then ``gc`` + heap trim. Weights,
    loss and temperature stay, so the model encodes and exports as before; to train it
    again, compile it with the optimizer you want."""
    model.compile(keras.optimizers.SGD(), loss=model.loss_fn)
    collect()
