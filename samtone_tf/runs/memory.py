"""The job's memory policy: which step saves memory where, and what is released between
the job's phases. The policy changes how a step is computed, never what it computes."""

from __future__ import annotations

import keras

from samtone_tf.devices import has_accelerator
from samtone_tf.heap import collect

AUTO_CHUNK = 4  # rows per gradient-cache chunk under "auto" (docs/RESULTS.md)


def memory_options(training, strategy, log=print):
    """``(remat, gradient_cache_chunk_size)`` for the model from ``training.remat`` and
    ``training.gradient_cache_chunk_size``; values other than "auto" pass through.

    "auto" (the default of both) is the low-memory step where the host's memory holds
    the activations: on a machine without a GPU or TPU (one replica, logical CPU
    replicas or CPU workers alike: the same kind of step whatever the strategy),
    ``remat=True`` (each transformer layer recomputed in the backward pass, the same
    step) and chunks of ``AUTO_CHUNK`` = 4 rows when the batch has more and a replica
    has at least 4 (fewer per replica: no cache), so the default job's step keeps one
    layer of 4 rows' activations instead of every layer of the whole batch (the default
    job: 6.6 GB → 2.18-2.53 GB with its other savings; 4 rows instead of 8: 0.07 GB less at
    0.97-1.09x the step time on a 2-core CPU: docs/RESULTS.md). With a GPU or TPU "auto"
    is off: the plain step, the fastest. Dropout masks are keyed on the example
    (:mod:`samtone_tf.layers.keyed_dropout`), so an "auto" job on CPU trains the model the
    plain step trains: the choice changes memory and time, not the result."""
    remat, chunk = training["remat"], training["gradient_cache_chunk_size"]
    if "auto" not in (remat, chunk):
        return remat, chunk
    host = not has_accelerator()
    per_replica = training["global_batch_size"] // strategy.num_replicas_in_sync
    if remat == "auto":
        remat = host
    if chunk == "auto":
        # a replica with exactly one chunk of rows still takes the cached step, so that
        # 2 replicas of 4 rows compute what one device does in 2 chunks of 4
        chunk = (AUTO_CHUNK if host and per_replica >= AUTO_CHUNK
                 and training["global_batch_size"] > AUTO_CHUNK else None)
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
