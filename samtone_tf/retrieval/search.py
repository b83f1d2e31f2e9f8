"""Exact top-k search by inner product (cosine for L2-normalised vectors).

:func:`exact_search` computes chunked matrix products and ``tf.math.top_k`` with a
running merge, so memory is O(query_chunk × (doc_chunk + k)), never queries × corpus.
Ties go to the lower document index, as in a full-matrix ``top_k``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def exact_search(queries, documents, k=100, query_chunk=1024, document_chunk=65536,
                 backend="tf"):
    """Exact top-k inner-product search.

    Args:
        queries: [Q, D] float array; documents: [N, D] float array.
        k: results per query (capped at N).
        backend: "tf" (chunked matmul + top_k; ties: the lower index first), "faiss"
            (``faiss.IndexFlatIP``, needs faiss-cpu; also exact; its tie order may
            differ) or "auto" (faiss when installed, else tf). Which is faster depends on
            the CPU (``benchmarks/search.py``, 100k × 384, top-100): FAISS 1.6× the TF
            path on one 2-core machine, the TF path 2.3× FAISS on another (docs/RESULTS.md).
    Returns:
        (scores [Q, k] float32, indices [Q, k] int64), best first.
    """
    queries = np.asarray(queries, np.float32)
    documents = np.asarray(documents, np.float32)  # a float32 memory map stays one
    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        raise ValueError(f"queries [Q, D] and documents [N, D] must share D; got "
                         f"{queries.shape} and {documents.shape}")
    if backend == "auto":
        import importlib.util

        backend = "faiss" if importlib.util.find_spec("faiss") is not None else "tf"
    if backend not in ("tf", "faiss"):
        raise ValueError(f"backend must be 'tf', 'faiss' or 'auto', got {backend!r}")
    k = min(int(k), len(documents))
    if k <= 0 or len(queries) == 0:
        return (np.zeros((len(queries), max(k, 0)), np.float32),
                np.zeros((len(queries), max(k, 0)), np.int64))
    if backend == "faiss":
        return _faiss_search(queries, documents, k)
    # Document blocks outside, query chunks inside: each block of a memory-mapped corpus
    # is read once and only one is held as a tensor; every query chunk merges the blocks
    # in corpus order, as a loop over all blocks per chunk would.
    q_starts = list(range(0, len(queries), query_chunk))
    best = [None] * len(q_starts)
    for d_start in range(0, len(documents), document_chunk):
        d = tf.constant(documents[d_start:d_start + document_chunk])
        for number, q_start in enumerate(q_starts):
            q = tf.constant(queries[q_start:q_start + query_chunk])
            scores, indices = _chunk_top_k(q, d, min(k, int(d.shape[0])), d_start)
            if best[number] is not None:  # earlier (lower-index) results first: ties keep them
                scores = tf.concat([best[number][0], scores], axis=1)
                indices = tf.concat([best[number][1], indices], axis=1)
                scores, position = tf.math.top_k(scores, k=min(k, int(scores.shape[1])))
                indices = tf.gather(indices, position, batch_dims=1)
            best[number] = (scores, indices)
        del d
    return (np.concatenate([scores.numpy() for scores, _ in best]),
            np.concatenate([indices.numpy() for _, indices in best]).astype(np.int64))


def _faiss_search(queries, documents, k):
    try:
        import faiss
    except ImportError:
        raise ImportError("backend='faiss' needs faiss-cpu: pip install faiss-cpu") from None
    index = faiss.IndexFlatIP(documents.shape[1])
    index.add(np.ascontiguousarray(documents))
    scores, indices = index.search(np.ascontiguousarray(queries), min(int(k), len(documents)))
    return scores.astype(np.float32), indices.astype(np.int64)


@tf.function(reduce_retracing=True)
def _chunk_top_k(q, d, k, offset):
    scores = tf.matmul(q, d, transpose_b=True)
    values, indices = tf.math.top_k(scores, k=k)
    return values, tf.cast(indices, tf.int64) + tf.cast(offset, tf.int64)


def run_from_search(query_ids, document_ids, scores, indices, ignore_identical_ids=False):
    """{query id: {document id: score}} from search results; ``document_ids``: a list,
    or row-wise ids (``ids_at``, :class:`samtone_tf.data.common.CorpusRows`)."""
    if hasattr(document_ids, "ids_at"):  # only the ids found, not the whole corpus' list
        flat = document_ids.ids_at(np.asarray(indices).ravel())
        width = np.asarray(indices).shape[1] if len(query_ids) else 0
        document_ids = None
        names = [flat[row * width:(row + 1) * width] for row in range(len(query_ids))]
    run = {}
    for row, query_id in enumerate(query_ids):
        ranked = {}
        for position, (score, index) in enumerate(zip(scores[row], indices[row])):
            doc_id = names[row][position] if document_ids is None else document_ids[index]
            if ignore_identical_ids and doc_id == query_id:
                continue
            ranked[doc_id] = float(score)
        run[query_id] = ranked
    return run
