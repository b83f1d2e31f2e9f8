"""Training examples and the tf.data pipeline that feeds ``DualEncoder.fit``.

* :func:`examples_from_qrels`: one example per judged (query, relevant document)
  pair (relevance > 0), in a stable order.
* :func:`no_duplicate_batches`: a seeded shuffle cut into global batches in which
  no query id and no positive document id repeats (as sentence-transformers'
  NO_DUPLICATES sampler); the remainder that cannot fill a batch is dropped
  (``drop_remainder``), so every batch divides across replicas.
* :func:`training_dataset`: strings → tokenized int32 tensors inside tf.data, ids
  as int64 indices, prefetched. Strings never reach the model, so the dataset
  distributes across replicas.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from samtone_tf.data.common import Collection
from samtone_tf.data.loaders import load_collection
from samtone_tf.data.runs import mine_hard_negatives, read_trec_run
from samtone_tf.errors import DataError
from samtone_tf.data.batches import batch_order, dataset_options, share_rows, tokenize_function
from samtone_tf.data.streaming import ExampleColumns, example_columns, streaming_dataset
from samtone_tf.tokenizers.padding import check_padding


@dataclasses.dataclass(frozen=True)
class Example:
    query_id: str
    document_id: str
    query: str
    document: str
    hard_negative_ids: tuple = ()
    hard_negatives: tuple = ()


def examples_from_qrels(collection: Collection, hard_negatives=None,
                        num_hard_negatives=0) -> list:
    """One :class:`Example` per (query, document) pair with relevance > 0.

    hard_negatives: {query id: [document id, ...]} (e.g. from
    :func:`samtone_tf.data.runs.mine_hard_negatives`); each example takes the
    first ``num_hard_negatives``. Queries with fewer are skipped with a warning
    that gives the count.
    """
    import warnings

    examples, short = [], 0
    for query_id in sorted(collection.qrels):
        negatives = ()
        if num_hard_negatives:
            mined = list((hard_negatives or {}).get(query_id, []))[:num_hard_negatives]
            unknown = [d for d in mined if d not in collection.corpus]
            if unknown:
                raise DataError(f"hard negative {unknown[0]!r} of query {query_id!r} is not "
                                 "in the corpus")
            if len(mined) < num_hard_negatives:
                short += 1
                continue
            negatives = tuple(mined)
        for doc_id, score in sorted(collection.qrels[query_id].items()):
            if score > 0:
                examples.append(Example(
                    query_id, doc_id, collection.queries[query_id],
                    collection.corpus[doc_id].full_text, negatives,
                    tuple(collection.corpus[d].full_text for d in negatives)))
    if short:
        warnings.warn(f"{short} query(ies) skipped: fewer than {num_hard_negatives} hard "
                      "negatives", stacklevel=2)
    return examples


def no_duplicate_batches(examples, batch_size: int, seed: int) -> list:
    """Index lists of full batches; no batch repeats a query id or a document id.

    Greedy over a seeded shuffle: an example whose query or document is already in
    the batch being filled waits for a later batch. Examples left over when no full
    batch can be formed are dropped (at most the size of one batch plus the
    examples that collide with every other, e.g. one query with many positives).
    """
    return batch_order([e.query_id for e in examples], [e.document_id for e in examples],
                       batch_size, seed)


def _index(values):
    """String ids → stable int indices (sorted unique order)."""
    return {v: i for i, v in enumerate(sorted(set(values)))}


def training_dataset(examples, query_tokenizer, document_tokenizer, global_batch_size: int,
                     seed: int = 0, epochs: int = 1, padding: str = "dynamic",
                     share=None) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of token batches for ``DualEncoder.fit``; ``examples``: a
    list of :class:`Example`, or :class:`~samtone_tf.data.streaming.ExampleColumns` (a
    stored corpus' rows, whose texts are fetched per batch).

    Each epoch is a fresh seeded no-duplicate batching (seed + epoch). Tokenizers
    are callables mapping a [N] string tensor to {"token_ids", "padding_mask"} with a
    ``max_length`` attribute. ``padding``: "dynamic" (each batch as wide as its
    longest text), "buckets" or "max_length" (see :mod:`samtone_tf.tokenizers.padding`; each
    side padded to its own tokenizer's buckets). tf.data's autotuner is off for these
    batches (with it on, ``fit`` waited at its end for the tuner's thread; see
    ``samtone_tf.data.batches.dataset_options``); a dataset derived from this one keeps that option.

    ``share`` = (index, count): only rows ``[index · B / count, (index + 1) · B / count)``
    of every global batch, fetched and tokenized (one input pipeline of several, see
    :class:`samtone_tf.training.distribute.PerWorkerInput`).
    """
    check_padding(padding)
    if isinstance(examples, ExampleColumns):  # rows of a stored corpus: texts per batch
        return streaming_dataset(examples, query_tokenizer, document_tokenizer,
                                 global_batch_size, seed, epochs, padding, share)
    if not examples:
        raise DataError("no training examples")
    query_index = _index(e.query_id for e in examples)
    query_ids = np.array([query_index[e.query_id] for e in examples], np.int64)
    num_negatives = len(examples[0].hard_negative_ids)
    if any(len(e.hard_negative_ids) != num_negatives for e in examples):
        raise ValueError("every example needs the same number of hard negatives")
    doc_index = _index([e.document_id for e in examples] + [d for e in examples
                                                            for d in e.hard_negative_ids])
    document_ids = np.array([doc_index[e.document_id] for e in examples], np.int64)
    order = [i for epoch in range(epochs)
             for batch in no_duplicate_batches(examples, global_batch_size, seed + epoch)
             for i in batch]
    if not order:
        raise DataError(f"{len(examples)} examples cannot fill one batch of "
                         f"{global_batch_size} without duplicates")
    columns = {
        "query": np.array([examples[i].query for i in order], dtype=object),
        "document": np.array([examples[i].document for i in order], dtype=object),
        "query_ids": query_ids[order],
        "document_ids": document_ids[order],
    }
    if num_negatives:
        columns["hard_negatives"] = np.array(
            [list(examples[i].hard_negatives) for i in order], dtype=object)
        columns["hard_negative_ids"] = np.array(
            [[doc_index[d] for d in examples[i].hard_negative_ids] for i in order], np.int64)

    dataset = tf.data.Dataset.from_tensor_slices(columns)
    dataset = dataset.batch(global_batch_size, drop_remainder=True)
    rows = share_rows(global_batch_size, share)
    if rows != slice(0, global_batch_size):
        dataset = dataset.map(lambda batch: {name: value[rows] for name, value in batch.items()})
    tokenize = tokenize_function(query_tokenizer, document_tokenizer, padding,
                                 rows.stop - rows.start, num_negatives)
    dataset = dataset.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(2).with_options(dataset_options())


def dataset_for(model, data, split="train", batch_size=32, epochs=1, seed=0,
                data_format="beir", hard_negatives=None, num_hard_negatives=0):
    """From a collection to ``model.fit`` in one call.

    Args:
        model: a :class:`~samtone_tf.models.DualEncoder` (its tokenizers and max lengths
            are used).
        data: a :class:`~samtone_tf.data.common.Collection`, or a path read with
            :func:`~samtone_tf.data.loaders.load_collection` (``data_format``, ``split``).
        batch_size: the global batch (split across a strategy's replicas by ``fit``).
        hard_negatives: None, a run ``{query id: {doc id: score}}`` or a TREC run file;
            ``num_hard_negatives`` per example are mined from it (positives excluded).

    Returns:
        A ``tf.data.Dataset`` of int32 token batches with no repeated query or
        positive in a batch (see :func:`training_dataset`).

    Example:

    >>> import keras
    >>> from samtone_tf import DualEncoder, SamToNeLoss, SmallTransformer, dataset_for
    >>> from samtone_tf.resources import scifact_path
    >>> model = DualEncoder(SmallTransformer(hidden_dim=16, num_layers=1, num_heads=2,
    ...                                      intermediate_dim=32), document_max_length=64)
    >>> model.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss())
    >>> dataset = dataset_for(model, scifact_path(), batch_size=16).take(2)
    >>> history = model.fit(dataset, verbose=0)
    >>> sorted(history.history)
    ['in_batch_accuracy', 'in_batch_mrr', 'loss']
    """
    collection = data if isinstance(data, Collection) else load_collection(
        str(data), split, data_format)
    negatives = None
    if num_hard_negatives:
        run = read_trec_run(hard_negatives) if isinstance(hard_negatives, str) else hard_negatives
        if run is None:
            raise DataError("num_hard_negatives > 0 needs hard_negatives (a run or run file)")
        negatives = mine_hard_negatives(run, collection.qrels, num_hard_negatives)
    if hasattr(collection.corpus, "rows_of"):  # a stored corpus: rows, texts per batch
        examples = example_columns(collection, negatives, num_hard_negatives)
    else:
        examples = examples_from_qrels(collection, negatives, num_hard_negatives)
    return training_dataset(examples, model.query_tokenizer(), model.document_tokenizer(),
                            batch_size, seed=seed, epochs=epochs, padding=model.padding)
