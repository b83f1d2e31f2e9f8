"""What both training inputs share (the in-memory examples of
:mod:`samtone_tf.data.pipeline` and the stored rows of :mod:`samtone_tf.data.streaming`):
the no-duplicate batch order, the tokenizing map and the tf.data options."""

from __future__ import annotations

import random

import tensorflow as tf

from samtone_tf.tokenizers.padding import pad_tokens


def batch_order(query_keys, document_keys, batch_size: int, seed: int) -> list:
    """:func:`no_duplicate_batches` over keys (any hashable per example: id strings, or
    int rows that name the same things one-to-one, which give the same batches)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    pending = list(range(len(query_keys)))
    random.Random(seed).shuffle(pending)
    batches = []
    while len(pending) >= batch_size:
        current, queries, documents, deferred = [], set(), set(), []
        for index in pending:
            query, document = query_keys[index], document_keys[index]
            if query in queries or document in documents:
                deferred.append(index)
                continue
            current.append(index)
            queries.add(query)
            documents.add(document)
            if len(current) == batch_size:
                batches.append(current)
                current, queries, documents = [], set(), set()
        left = current + deferred  # the partial batch and the collisions try again
        if len(left) == len(pending):
            break  # no batch completed in this pass: the rest cannot fill one
        pending = left
    return batches


def tokenize_function(query_tokenizer, document_tokenizer, padding, global_batch_size,
                      num_negatives):
    """The map from a batch of texts ("query", "document"[, "hard_negatives" [B, k]])
    and ids to the padded token tensors ``DualEncoder.fit`` takes."""

    def pad(tokens, tokenizer):
        return pad_tokens(tokens, padding, tokenizer.max_length)

    def tokenize(batch):
        out = {
            "query": pad(query_tokenizer(batch["query"]), query_tokenizer),
            "document": pad(document_tokenizer(batch["document"]), document_tokenizer),
            "query_ids": batch["query_ids"],
            "document_ids": batch["document_ids"],
        }
        if num_negatives:
            flat = pad(document_tokenizer(tf.reshape(batch["hard_negatives"], [-1])),
                       document_tokenizer)
            out["hard_negatives"] = {
                k: tf.reshape(v, [global_batch_size, num_negatives, -1]) for k, v in flat.items()}
            out["hard_negative_ids"] = batch["hard_negative_ids"]
        return out

    return tokenize


def share_rows(global_batch_size, share=None):
    """The rows of a global batch that input pipeline ``share`` = (index, count) of
    ``count`` builds: the index-th of ``count`` equal slices (all rows for None)."""
    if share is None or share[1] == 1:
        return slice(0, global_batch_size)
    index, count = share
    if global_batch_size % count:
        raise ValueError(f"a global batch of {global_batch_size} cannot be split evenly "
                         f"across {count} input pipelines")
    size = global_batch_size // count
    return slice(index * size, (index + 1) * size)


def dataset_options():
    """tf.data's autotuning off: the map keeps tf.data's default parallelism, untuned,
    and two batches are prefetched (a fixed buffer: ``AUTOTUNE`` there needs the tuner).

    With it on, ``fit`` over these batches often returned long after its last step: the
    iterator's teardown waited for the autotuner's background thread, which wakes at
    10 ms × (2**n − 1) after the iterator starts, so a 4-step pass of 21 s returned at
    exactly 40.95 s (5 of 10 passes; 0 of 8 with autotuning off, the same step times;
    docs/RESULTS.md). Tokenizing a batch takes milliseconds next to
    a training step's seconds: there is nothing for the autotuner to win."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options
