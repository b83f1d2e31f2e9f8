"""Encoding with a trained tower: one traced function per tower (split across local
replicas under MirroredStrategy/TPU) and length-sorted, dynamically padded batches."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from samtone_tf.batching import length_sorted_batches
from samtone_tf.devices import has_accelerator, in_multi_worker_mode
from samtone_tf.tokenizers.padding import padded_width


def check_jit_compile(jit_compile, name="jit_compile"):
    """Raises ValueError unless ``jit_compile`` is "auto", True or False (the one check
    of it: the model's ``encode_jit_compile``, the job's ``training.jit_compile``)."""
    if not (jit_compile == "auto" or isinstance(jit_compile, bool)):
        raise ValueError(f"{name} must be 'auto', True or False, got {jit_compile!r}")


def resolve_encode_jit(jit_compile, strategy):
    """``jit_compile`` for encoding: True/False as given; "auto" = XLA with one local
    device when it is a GPU or TPU, off on CPU-only machines and with several local
    replicas (XLA fails under MirroredStrategy over logical CPUs). Measured on a 2-core
    CPU (``benchmarks/encode.py --variants``, 256-token SciFact abstracts): XLA encodes
    1.12× faster once compiled, but compiling each padded width costs more than that
    saves on a corpus of thousands of documents; ``True`` pays for very large corpora."""
    check_jit_compile(jit_compile)
    if jit_compile != "auto":
        return jit_compile
    one_device = strategy.num_replicas_in_sync == 1 or in_multi_worker_mode(strategy)
    return one_device and has_accelerator()


def tower_encode_function(tower, strategy, jit_compile=False):
    """tokens → embeddings; with several local replicas (MirroredStrategy, TPU) each
    batch is split across them. Multi-worker strategies encode on the local device.
    ``jit_compile``: see :func:`resolve_encode_jit`."""
    jit = resolve_encode_jit(jit_compile, strategy)
    replicas = strategy.num_replicas_in_sync
    if replicas == 1 or in_multi_worker_mode(strategy):
        return tf.function(lambda t: tower(t, training=False), reduce_retracing=True,
                           jit_compile=jit)

    @tf.function(reduce_retracing=True, jit_compile=jit)
    def distributed(per_replica):
        outputs = strategy.run(lambda t: tower(t, training=False), args=(per_replica,))
        return tf.concat(strategy.experimental_local_results(outputs), axis=0)

    def function(tokens):
        rows = len(tokens["token_ids"])
        share = -(-rows // replicas)
        padded = {k: np.concatenate([v, np.repeat(v[-1:], share * replicas - rows, axis=0)])
                  for k, v in tokens.items()}

        def value(context):
            start = context.replica_id_in_sync_group * share
            return {k: v[start:start + share] for k, v in padded.items()}

        per_replica = strategy.experimental_distribute_values_from_function(value)
        return distributed(per_replica)[:rows]

    return function


ENCODE_MULTIPLE = 16  # "dynamic" corpus encoding: widths round up to a multiple of this


def encode_sorted(function, tokens, batch_size, dim, padding="dynamic", max_length=None,
                  multiple=ENCODE_MULTIPLE):
    """Length-sorted batches, each padded to its longest row rounded up to a multiple
    of ``multiple`` ("dynamic"; 16: few distinct shapes to compile or to keep kernels
    for, 1: no padding beyond the batch's longest row), to a bucket ("buckets") or to
    ``max_length`` (default: the token arrays' width); see :mod:`samtone_tf.tokenizers.padding`.
    Returns the embeddings in the input order."""
    token_ids = np.asarray(tokens["token_ids"])
    mask = np.asarray(tokens["padding_mask"])
    n = len(token_ids)
    out = np.zeros((n, dim), "float32")
    if n == 0:
        return out
    lengths = mask.sum(axis=1)
    max_length = max(int(max_length or 0), token_ids.shape[1])
    if token_ids.shape[1] < max_length:  # room for the widest bucket
        extra = ((0, 0), (0, max_length - token_ids.shape[1]))
        token_ids, mask = np.pad(token_ids, extra), np.pad(mask, extra)
    for rows in length_sorted_batches(lengths, batch_size):
        longest = max(int(lengths[rows].max()), 1)
        if padding == "dynamic":
            width = min(-(-longest // multiple) * multiple, max_length)
        else:
            width = padded_width(longest, padding, max_length)
        chunk = {"token_ids": token_ids[rows, :width], "padding_mask": mask[rows, :width]}
        out[rows] = function(chunk).numpy()
    return out


def encode_side(model, side, inputs, batch_size):
    """``model.encode_queries`` / ``encode_documents``: strings (tokenized with the
    model's tokenizer) or a token dict → float32 [N, dim], with the model's padding
    and ``encode_jit_compile``; the traced function is kept on the model."""
    tower = model.query_tower if side == "query" else model.document_tower
    if not isinstance(inputs, dict):
        texts = list(inputs)
        if not texts:
            return np.zeros((0, tower.output_dim), "float32")
        tokenizer = model._tokenizers.get(side)
        if tokenizer is None:
            tokenizer = model._tokenizers[side] = (
                model.query_tokenizer() if side == "query" else model.document_tokenizer())
        inputs = {k: v.numpy() for k, v in tokenizer(tf.constant(texts)).items()}
    if side not in model._encode_functions:  # the traced function, kept on the model
        model._encode_functions[side] = tower_encode_function(
            tower, model.distribute_strategy, model.encode_jit_compile)
    function = model._encode_functions[side]
    max_length = model.query_max_length if side == "query" else model.document_max_length
    # "dynamic" widths round up to a multiple of 16 (ENCODE_MULTIPLE), with or without
    # XLA: XLA compiles per shape, and without it oneDNN makes kernels per shape, which
    # TensorFlow keeps; the default job's evaluation of 5,183 abstracts at exact widths
    # held 0.08 GB more into the training that followed (docs/RESULTS.md, "The default
    # job's memory"). Padding changes no embedding (masked; tested).
    return encode_sorted(function, inputs, batch_size, tower.output_dim, model.padding,
                         max_length, multiple=ENCODE_MULTIPLE)
