"""Training input from a stored corpus (:mod:`samtone_tf.data.store`): examples as int
arrays, texts fetched and tokenized per batch inside tf.data.

:func:`example_columns` gives one row per judged (query, relevant document) pair, in
:func:`~samtone_tf.data.pipeline.examples_from_qrels`' order: the query's index into the
split's judged queries, the positive's corpus row and the hard negatives' rows. The
batch order is :func:`~samtone_tf.data.batches.batch_order` on those ints, which name
queries and documents one-to-one as their ids do, so the batches are the in-memory
pipeline's batches, example for example. The dataset holds only the order (ints); each
batch's texts are taken from the memory-mapped corpus by row when tf.data reaches it,
so memory does not grow with the corpus and nothing is materialised before the first
step. The ids the loss compares are the query indices and corpus rows.
"""

from __future__ import annotations

import atexit
import dataclasses
import threading
import time
import warnings

import numpy as np
import tensorflow as tf

from samtone_tf.data.batches import batch_order, dataset_options, share_rows, tokenize_function
from samtone_tf.errors import DataError


_CALLS = {"active": 0, "last": 0.0}
_LOCK = threading.Lock()


def _tracked(function):
    """``function`` counted while it runs (see :func:`_quiesce`)."""

    def call(*args):
        with _LOCK:
            _CALLS["active"] += 1
        try:
            return function(*args)
        finally:
            with _LOCK:
                _CALLS["active"] -= 1
                _CALLS["last"] = time.monotonic()

    return call


@atexit.register
def _quiesce(idle=0.2, limit=10.0):
    """Lets the fetches of a live iterator finish before the interpreter finalizes.

    tf.data runs the fetch on its own threads; one that starts while Python is
    finalizing waits for the GIL forever, and the iterator's destructor waits for it (a
    process that read a few batches and exited hung: measured with TensorFlow 2.21,
    tests/test_store.py). Before finalization the pipeline fills its fixed buffers and
    goes idle; this waits, at most ``limit`` seconds, until no fetch has run for
    ``idle`` seconds."""
    if not _CALLS["last"]:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with _LOCK:
            quiet = not _CALLS["active"] and time.monotonic() - _CALLS["last"] >= idle
        if quiet:
            return
        time.sleep(idle / 4)


@dataclasses.dataclass
class ExampleColumns:
    """Training examples as arrays: ``query`` [E] indexes ``query_texts`` (the judged
    queries, ``query_ids`` their ids), ``document`` [E] and ``negatives`` [E, k] are rows
    of ``corpus`` (a stored corpus: ``texts_at``)."""

    query_ids: list
    query_texts: np.ndarray
    query: np.ndarray
    document: np.ndarray
    negatives: np.ndarray
    corpus: object
    order: str = "greedy"  # or "vectorized" (streaming_dataset)

    def __len__(self):
        return len(self.query)


def example_columns(collection, hard_negatives=None, num_hard_negatives=0):
    """:class:`ExampleColumns` of ``collection`` (whose corpus is stored): one per
    (query, document) pair with relevance > 0; ``hard_negatives`` {query id: [document
    id, ...]} gives each example its first ``num_hard_negatives`` (queries with fewer
    are skipped with a warning, as :func:`~samtone_tf.data.pipeline.examples_from_qrels`
    does)."""
    corpus = collection.corpus
    query_ids, query_of, documents, negatives, short = [], [], [], [], 0
    for query_id in sorted(collection.qrels):
        mined = ()
        if num_hard_negatives:
            mined = list((hard_negatives or {}).get(query_id, []))[:num_hard_negatives]
            if len(mined) < num_hard_negatives:
                short += 1
                continue
        positives = [d for d, score in sorted(collection.qrels[query_id].items()) if score > 0]
        if not positives:
            continue
        number = len(query_ids)
        query_ids.append(query_id)
        for doc_id in positives:
            query_of.append(number)
            documents.append(doc_id)
            negatives.append(mined)
    if short:
        warnings.warn(f"{short} query(ies) skipped: fewer than {num_hard_negatives} hard "
                      "negatives", stacklevel=2)
    rows = corpus.rows_of(documents)
    flat = [d for mined in negatives for d in mined]
    negative_rows = corpus.rows_of(flat).reshape(len(negatives), num_hard_negatives)
    if (negative_rows < 0).any():
        position = int(np.flatnonzero(negative_rows.ravel() < 0)[0])
        raise DataError(f"hard negative {flat[position]!r} of query "
                        f"{query_ids[query_of[position // num_hard_negatives]]!r} is not in "
                        "the corpus")
    return ExampleColumns(query_ids, np.array([collection.queries[q] for q in query_ids],
                                              dtype=object),
                          np.array(query_of, np.int64), rows, negative_rows, corpus)


def streaming_dataset(columns, query_tokenizer, document_tokenizer, global_batch_size,
                      seed=0, epochs=1, padding="dynamic", share=None):
    """:func:`~samtone_tf.data.pipeline.training_dataset` for :class:`ExampleColumns`:
    the dataset holds batch numbers into a NumPy [batches, B] int32 order; each batch's
    ids and texts are gathered from the columns (memory-mapped or not) and the corpus
    when tf.data reaches it. The order is :func:`~samtone_tf.data.batches.batch_order`'s
    (the in-memory pipeline's batches), or for ``columns.order == "vectorized"`` (the
    tens of millions of MS MARCO triples) :func:`vectorized_batch_order`'s. ``share`` =
    (index, count): this input pipeline fetches and tokenizes only its slice of each
    global batch (:func:`~samtone_tf.data.batches.share_rows`)."""
    if not len(columns):
        raise DataError("no training examples")
    if columns.order == "vectorized":
        batches = [vectorized_batch_order(columns.query, columns.document, global_batch_size,
                                          seed + epoch) for epoch in range(epochs)]
        order = np.concatenate(batches) if batches else np.zeros((0, global_batch_size))
    else:
        order = np.array([batch for epoch in range(epochs)
                          for batch in batch_order(columns.query, columns.document,
                                                   global_batch_size, seed + epoch)],
                         np.int32).reshape(-1, global_batch_size)
    if not len(order):
        raise DataError(f"{len(columns)} examples cannot fill one batch of "
                        f"{global_batch_size} without duplicates")
    num_negatives = columns.negatives.shape[1]
    query_texts, corpus = columns.query_texts, columns.corpus
    rows = share_rows(global_batch_size, share)
    order = order[:, rows]
    size = rows.stop - rows.start

    def encoded(texts):
        return np.array([t.encode("utf-8") for t in texts], dtype=object)

    @_tracked
    def gather(batch):  # a batch's example numbers → ids and texts, from the memory maps
        numbers = order[int(batch)]
        queries = np.asarray(columns.query[numbers], np.int64)
        documents = np.asarray(columns.document[numbers], np.int64)
        negatives = np.asarray(columns.negatives[numbers], np.int64).reshape(-1)
        return (queries, documents, negatives, encoded(query_texts[queries]),
                encoded(corpus.texts_at(documents)), encoded(corpus.texts_at(negatives)))

    def fetch(batch):
        found = tf.numpy_function(gather, [batch], [tf.int64, tf.int64, tf.int64, tf.string,
                                                      tf.string, tf.string], stateful=False)
        out = {"query_ids": found[0], "document_ids": found[1], "query": found[3],
               "document": found[4]}
        for name in out:
            out[name].set_shape([size])
        if num_negatives:
            out["hard_negative_ids"] = tf.reshape(found[2], [size, num_negatives])
            out["hard_negatives"] = tf.reshape(found[5], [size, num_negatives])
        return out

    dataset = tf.data.Dataset.range(len(order))  # the order stays a NumPy array
    dataset = dataset.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    tokenize = tokenize_function(query_tokenizer, document_tokenizer, padding, size,
                                 num_negatives)
    dataset = dataset.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(2).with_options(dataset_options())


def _later_repeats(keys, batches, rows=65_536):
    """[batches, B] bool: True where ``keys[batches]`` repeats a key earlier in its batch
    (``rows`` batches at a time: the sort's int64 indices of 40M examples are 320 MB)."""
    repeat = np.zeros(batches.shape, dtype=bool)
    for start in range(0, len(batches), rows):
        part = np.asarray(keys[batches[start:start + rows]])
        order = np.argsort(part, axis=1, kind="stable")
        ordered = np.take_along_axis(part, order, axis=1)
        same = ordered[:, 1:] == ordered[:, :-1]  # stable: the later one comes second
        np.put_along_axis(repeat[start:start + rows], order[:, 1:], same, axis=1)
    return repeat


def vectorized_batch_order(query_keys, document_keys, batch_size, seed, rounds=8):
    """[batches, B] int32 example numbers with no query or document repeated in a batch,
    computed with NumPy for tens of millions of examples (the Python greedy of
    :func:`~samtone_tf.data.batches.batch_order` would hold them as Python ints): a
    seeded permutation is cut into batches; the batches that repeat no key are kept, in
    order; the others' examples are cut again (the ones that repeat a key of their batch
    moved behind the rest), and only those are checked again, for up to ``rounds``
    rounds; what still repeats a key is dropped. With MS MARCO's 40M triples of 500k
    queries about 1 batch of 64 in 200 repeats a key, so only the first round sorts
    every batch. Another order than the greedy one (same guarantee); for large example
    sets only."""
    numbers = np.random.default_rng(seed).permutation(len(query_keys)).astype(np.int32)
    kept = []
    for _ in range(rounds):
        full = len(numbers) // batch_size * batch_size
        batches = numbers[:full].reshape(-1, batch_size)
        bad = _later_repeats(query_keys, batches) | _later_repeats(document_keys, batches)
        dirty = bad.any(axis=1)
        kept.append(batches[~dirty])
        if not dirty.any():
            break
        rest, repeats = batches[dirty], bad[dirty]
        numbers = np.concatenate([rest[~repeats], rest[repeats], numbers[full:]])
    return np.concatenate(kept)
