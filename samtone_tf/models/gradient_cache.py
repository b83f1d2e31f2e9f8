"""Gradient cache for SamToNe: large global batches at the memory of one chunk.

Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup". The contrastive loss couples every row of the global batch, but its value
depends on the towers only through the embeddings. One step
(``DualEncoder.compile(..., gradient_cache_chunk_size=N)``):

1. **Embed without a tape**: the replica's queries, documents and hard negatives,
   N rows at a time; only the [rows, dim] embeddings are kept.
2. **Loss on the embeddings**: SamToNe exactly as without the cache (all-gathered
   across replicas), with its gradient g = ∂L/∂e with respect to the replica's own
   embeddings (through ``all_gather``'s gradient) and to the loss's own variables
   (a trainable temperature).
3. **Re-embed under a tape, chunk by chunk**: for each chunk, the gradient of
   Σ e·stop_gradient(g) with respect to the tower weights is ∂L/∂e · ∂e/∂θ for that
   chunk; the chunks' gradients are summed. A shared tower (SDE, shared parts of the
   ADE variants) receives both sides' gradients. Regularisers add their own.

Peak activation memory is one chunk's forward and backward pass, not the batch's;
the towers run forward twice (≈ 1.3× the time of a plain step, not 2×, since the
backward pass dominates).

Dropout: the random state of every dropout layer (Keras seed generators) is saved
before pass 1 and restored before pass 3, and both passes visit the chunks in the
same order, so pass 3 sees exactly pass 1's masks. The step then equals a step that
embeds the same chunks under one tape (with dropout off: Keras' own full-batch step).

The chunks are visited by ``tf.while_loop``s (one traced tower call per pass,
whatever the batch); the last chunk is completed with padding rows (mask 0; their
embeddings are dropped and get a zero gradient), so every chunk has exactly N rows and
the step compiles with XLA (``jit_compile=True``, tested) and on TPUs when the
per-replica batch is static (``drop_remainder=True``, as
:func:`samtone_tf.data.pipeline.training_dataset` does); an unknown batch size
(multi-worker input sharding) works too.
"""

from __future__ import annotations

import tensorflow as tf

from samtone_tf.layers.keyed_dropout import row_offset
from samtone_tf.layers.remat import seed_states as _seed_states  # one definition of them


def _flat_hard_negatives(hard):
    ids = hard["token_ids"]
    if ids.shape.rank != 3 or ids.shape[1] is None:
        raise ValueError("hard_negatives token_ids must be [batch, num_negatives, length] "
                         "with a static num_negatives for the gradient cache")
    return {k: tf.reshape(v, [-1, tf.shape(v)[2]]) for k, v in hard.items()}


SIDE_NAMES = {"query_embeddings": "query", "document_embeddings": "document",
              "hard_negative_embeddings": "hard_negatives"}


def _sides(model, x):
    """[(output key, tower, token dict, static rows or None)] for the batch's sides."""
    sides = [("query_embeddings", model.query_tower, x["query"]),
             ("document_embeddings", model.document_tower, x["document"])]
    if x.get("hard_negatives") is not None:
        flat = _flat_hard_negatives(x["hard_negatives"])
        sides.append(("hard_negative_embeddings", model.document_tower, flat))
    return [(key, tower, tokens, tokens["token_ids"].shape[0]) for key, tower, tokens in sides]


def _keyed(model, key, tokens, index, size):
    """The dropout keys of chunk ``index`` of a side: its rows' global indices, as the
    plain step gives them (padding rows past the end get keys too; they are dropped)."""
    rows = row_offset(tf.shape(tokens["token_ids"])[0]) + index * size + tf.range(size)
    return model.dropout_keys(tokens, SIDE_NAMES[key], rows=rows)


def _pad_rows(tensor, extra):
    """``tensor`` with ``extra`` zero rows appended."""
    return tf.pad(tensor, [[0, extra]] + [[0, 0]] * (tensor.shape.rank - 1))


def _padded(tokens, size):
    """The token dict with zero rows (padding mask 0) up to a multiple of ``size``,
    so every chunk has exactly ``size`` rows (static shapes for XLA and TPUs), and the
    true row count."""
    rows = tf.shape(tokens["token_ids"])[0]
    extra = (size - rows % size) % size
    return {k: _pad_rows(v, extra) for k, v in tokens.items()}, rows


def _slice(tensor, start, size):
    """Rows [start, start + size) with a static size (``tf.slice``, XLA-friendly)."""
    rank = tensor.shape.rank
    return tf.slice(tensor, [start] + [0] * (rank - 1), [size] + [-1] * (rank - 1))


def _chunk(tokens, index, size):
    """Chunk ``index`` of a (padded) token dict: rows [index·size, (index+1)·size)."""
    return {k: _slice(v, index * size, size) for k, v in tokens.items()}


def _count(tokens, size):
    rows = tf.shape(tokens["token_ids"])[0]
    return (rows + size - 1) // size


def _embed(model, key, tower, tokens, size):
    """Pass 1: the tower over every chunk, no tape; [rows, dim]. A sequential
    ``tf.while_loop`` (``parallel_iterations=1``: the default 10 would run ten chunks
    at once and hold ten chunks' activations, measured; two in flight bought no
    consistent time for 1.5× the memory, measured) keeps one chunk alive at a time and
    traces the tower once, whatever the number of chunks. Rows of padding complete
    the last chunk (their embeddings are dropped)."""
    padded, rows = _padded(tokens, size)
    array = tf.TensorArray(tf.float32, size=_count(padded, size),
                           element_shape=tf.TensorShape([size, tower.output_dim]))

    def body(index, array):
        with _keyed(model, key, tokens, index, size):
            out = tf.cast(tower(_chunk(padded, index, size), training=True), tf.float32)
        return index + 1, array.write(index, out)

    _, array = tf.while_loop(lambda index, _: index < array.size(), body, [0, array],
                             parallel_iterations=1)  # one chunk's activations at a time
    return tf.stop_gradient(tf.reshape(array.concat()[:rows], [rows, tower.output_dim]))


def _backpropagate(model, key, tower, tokens, grad, size, variables, totals):
    """Pass 3: re-embed each chunk under a tape and add ∂L/∂e · ∂e/∂θ to ``totals``
    (padding rows get a zero embedding gradient)."""
    padded, rows = _padded(tokens, size)
    grad = _pad_rows(grad, tf.shape(padded["token_ids"])[0] - rows)

    def body(index, *totals):
        with tf.GradientTape() as tape, _keyed(model, key, tokens, index, size):
            out = tower(_chunk(padded, index, size), training=True)
            surrogate = tf.reduce_sum(tf.cast(out, tf.float32) * tf.stop_gradient(
                _slice(grad, index * size, size)))
        grads = tape.gradient(surrogate, [getattr(v, "value", v) for v in variables],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return (index + 1, *[t + tf.cast(tf.convert_to_tensor(g), t.dtype)
                             for t, g in zip(totals, grads)])

    count = _count(padded, size)
    out = tf.while_loop(lambda index, *_: index < count, body, [0, *totals],
                        parallel_iterations=1)  # one chunk's activations at a time
    return list(out[1:])


def cached_train_step(model, x, size):
    """One optimizer step with the gradient cache; returns the step's logs."""
    sides = _sides(model, x)
    seeds = _seed_states(model)
    saved = [tf.identity(v) for v in seeds]

    # 1. embed without a tape, chunk by chunk
    embeddings = {key: _embed(model, key, tower, tokens, size) for key, tower, tokens, _ in sides}
    if "hard_negative_embeddings" in embeddings:
        flat = embeddings["hard_negative_embeddings"]
        embeddings["hard_negative_embeddings"] = tf.reshape(
            flat, [tf.shape(embeddings["query_embeddings"])[0], -1, flat.shape[-1]])

    # 2. the loss on the embeddings and its gradient w.r.t. them (and the loss's own
    #    variables, e.g. a trainable temperature); regularisers need the weights
    loss_variables = list(model.loss_fn.trainable_variables)
    keys = [key for key, *_ in sides]
    with tf.GradientTape() as tape:
        tape.watch([embeddings[k] for k in keys])
        loss = model.compute_loss(x=x, y_pred=embeddings, training=True)
        scaled = model.optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, [embeddings[k] for k in keys] + loss_variables)
    embedding_grads = dict(zip(keys, grads[:len(keys)]))
    loss_grads = {id(v): g for v, g in zip(loss_variables, grads[len(keys):])}
    if "hard_negative_embeddings" in embedding_grads:
        grad = embedding_grads["hard_negative_embeddings"]
        embedding_grads["hard_negative_embeddings"] = tf.reshape(grad, [-1, grad.shape[-1]])

    # 3. re-embed under a tape with pass 1's dropout masks; accumulate ∂L/∂θ
    for variable, value in zip(seeds, saved):
        variable.assign(value)
    variables = model.trainable_variables
    totals = [tf.zeros(v.shape, tf.float32) for v in variables]
    for key, tower, tokens, _ in sides:
        totals = _backpropagate(model, key, tower, tokens, embedding_grads[key], size,
                                variables, totals)
    totals = [_add(t, loss_grads.get(id(v))) for t, v in zip(totals, variables)]
    if model.losses:  # regularisers (already in ``loss``; their gradient is their own)
        with tf.GradientTape() as reg_tape:
            replicas = model.distribute_strategy.num_replicas_in_sync
            penalty = model.optimizer.scale_loss(tf.add_n(model.losses) / replicas)
        reg_grads = reg_tape.gradient(penalty, variables)
        totals = [_add(t, g) for t, g in zip(totals, reg_grads)]
    model.optimizer.apply_gradients(
        [(tf.cast(g, tf.as_dtype(v.dtype)), v) for g, v in zip(totals, variables)])

    first = next(v for v in tf.nest.flatten(x) if v is not None)
    model._loss_tracker.update_state(_unscale_for_distribution(loss),
                                     sample_weight=tf.shape(first)[0])
    return model.compute_metrics(x, None, embeddings)


def _add(total, grad):
    if grad is None:
        return total
    return total + tf.cast(tf.convert_to_tensor(grad), total.dtype)


def _unscale_for_distribution(value):
    """The loss as Keras' loss tracker records it: a replica's loss is scaled by 1 /
    replicas for the gradient sum, so the tracker multiplies it back (what Keras'
    ``unscale_loss_for_distribution`` does on the TensorFlow backend)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value * tf.cast(replicas, value.dtype) if replicas > 1 else value
