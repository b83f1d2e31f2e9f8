"""Cross-replica gathering of a batch's embeddings and ids (the global batch the loss
scores each replica's rows against)."""

from __future__ import annotations

import tensorflow as tf


def gather_global(q, d, h, qid, did, hid):
    """All-gathers the batch across replicas when there is more than one.

    Returns (q, d, h, qid, did, hid, offset, global_rows), where ``offset`` is the
    index of this replica's first row in the global batch.
    """
    local_rows = tf.shape(q)[0]
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return q, d, h, qid, did, hid, tf.constant(0, tf.int32), local_rows

    def gather(x):
        return None if x is None else context.all_gather(x, axis=0)

    def gather_ids(ids):
        # int64 ids travel as int32 pairs: MultiWorkerMirroredStrategy's collective
        # all_gather rejects int64 ("destinations can not be empty"). Exact.
        if ids is None:
            return None
        return tf.bitcast(gather(tf.bitcast(ids, tf.int32)), tf.int64)

    sizes = gather(tf.reshape(local_rows, [1]))  # [replicas]
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    offset = tf.reduce_sum(tf.where(tf.range(tf.shape(sizes)[0]) < replica, sizes, 0))
    global_rows = tf.reduce_sum(sizes)
    return (
        gather(q), gather(d), gather(h), gather_ids(qid), gather_ids(did), gather_ids(hid),
        offset, global_rows,
    )
