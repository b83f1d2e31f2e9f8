"""Encoding with a trained tower: one traced function per tower (split across local
replicas under MirroredStrategy/TPU) and length-sorted, dynamically padded batches."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from samtone_tf.batching import length_sorted_batches


def tower_encode_function(tower, strategy):
    """tokens → embeddings; with several local replicas (MirroredStrategy, TPU) each
    batch is split across them. Multi-worker strategies encode on the local device."""
    from samtone_tf.distribute import in_multi_worker_mode

    single = tf.function(lambda t: tower(t, training=False), reduce_retracing=True)
    replicas = strategy.num_replicas_in_sync
    if replicas == 1 or in_multi_worker_mode(strategy):
        return single

    @tf.function(reduce_retracing=True)
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


def encode_sorted(function, tokens, batch_size, dim):
    """Length-sorted batches, each padded only to its longest row (dynamic padding);
    returns the embeddings in the input order."""
    token_ids = np.asarray(tokens["token_ids"])
    mask = np.asarray(tokens["padding_mask"])
    n = len(token_ids)
    out = np.zeros((n, dim), "float32")
    if n == 0:
        return out
    lengths = mask.sum(axis=1)
    for rows in length_sorted_batches(lengths, batch_size):
        # pad to a multiple of 16 (within the row width): few distinct shapes to trace
        width = min(-(-max(int(lengths[rows].max()), 1) // 16) * 16, token_ids.shape[1])
        chunk = {"token_ids": token_ids[rows, :width], "padding_mask": mask[rows, :width]}
        out[rows] = function(chunk).numpy()
    return out
