"""BM25 (Lucene's variant) over a collection: scores, a baseline run, and top-k in blocks.

The corpus becomes a sparse [terms × documents] matrix of BM25 weights (scikit-learn's
``CountVectorizer`` over the texts, streamed from a stored corpus in chunks); queries are
scored a block at a time, sized so a block holds at most ``BLOCK_SCORES`` scores, and
only each query's top k is kept, so memory is the sparse matrix plus one block, never
[queries × documents] (2,000 × 100k was 1.8 GB; MS MARCO's training queries would need
35 TB). ``bm25s`` (Lucene variant, ``k1=0.9, b=0.4``, same tokens) gives the same scores
divided by k1 + 1 (checked to 3e-14 on SciFact; it drops Lucene's constant factor);
scikit-learn is used because it is already a dependency and gives today's numbers.
"""

from __future__ import annotations

import numpy as np

BLOCK_SCORES = 1 << 24  # scores per query block (128 MB of float64)


def _corpus_texts(collection, chunk=65_536):
    """The documents' texts in corpus order, streamed (a stored corpus by row ranges)."""
    from samtone_tf.data.common import CorpusRows

    rows = CorpusRows(collection.corpus)
    for start in range(0, len(rows), chunk):
        yield from rows.texts(start, min(start + chunk, len(rows)))


def bm25_index(collection, k1=0.9, b=0.4):
    """(vectorizer, weights): the fitted vectorizer and the [terms × documents] CSR matrix
    of BM25 weights, idf = ln(1 + (N - n + 0.5) / (n + 0.5)), tf · (k1 + 1) / (tf + k1 ·
    (1 - b + b · length / mean length)); lower-cased ``\\w+`` tokens, no stemming, no stop
    words."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b")
    tf_matrix = vectorizer.fit_transform(_corpus_texts(collection)).tocsr().astype(np.float64)
    lengths = np.asarray(tf_matrix.sum(axis=1)).ravel()
    n_docs = tf_matrix.shape[0]
    df = np.bincount(tf_matrix.indices, minlength=tf_matrix.shape[1])
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1e-9))
    rows = np.repeat(np.arange(n_docs), np.diff(tf_matrix.indptr))
    tf_matrix.data = (idf[tf_matrix.indices] * tf_matrix.data * (k1 + 1)
                      / (tf_matrix.data + norm[rows]))
    del rows
    return vectorizer, tf_matrix.T.tocsr()  # terms × docs


def score_blocks(collection, query_ids=None, k1=0.9, b=0.4):
    """Yields (first query's position, dense float64 [block, documents] scores) for the
    queries ``query_ids`` (default: all of ``collection.queries``), a block at a time."""
    vectorizer, weights = bm25_index(collection, k1, b)
    query_ids = list(collection.queries) if query_ids is None else list(query_ids)
    block = max(1, BLOCK_SCORES // max(weights.shape[1], 1))
    for start in range(0, len(query_ids), block):
        terms = vectorizer.transform([collection.queries[q]
                                      for q in query_ids[start:start + block]])
        yield start, (terms @ weights).toarray()


def top_k_rows(scores, k):
    """(indices, values) of each row's k best, best first, ties in index order: what
    ``np.argsort(-row, kind="stable")[:k]`` gives, without sorting the whole row."""
    k = min(int(k), scores.shape[1])
    indices = np.empty((len(scores), k), np.int64)
    for row, values in enumerate(scores):
        if k < len(values):
            kth = np.partition(values, len(values) - k)[len(values) - k]
            candidates = np.flatnonzero(values >= kth)  # the k best and every tie of the kth
        else:
            candidates = np.arange(len(values))
        order = np.argsort(-values[candidates], kind="stable")[:k]
        indices[row] = candidates[order]
    return indices, np.take_along_axis(scores, indices, axis=1)


def bm25_scores(collection, k1=0.9, b=0.4):
    """BM25 scores of every query against every document: (query ids, document ids,
    float64 [Q, N]). Holds [Q, N]: for small collections and checks (see
    :func:`bm25_run` for a top-k in blocks)."""
    query_ids = list(collection.queries)
    blocks = [scores for _, scores in score_blocks(collection, query_ids, k1, b)]
    scores = np.concatenate(blocks) if blocks else np.zeros((0, len(collection.corpus)))
    return query_ids, list(collection.corpus), scores


def bm25_run(collection, k=100, k1=0.9, b=0.4):
    """A BM25 baseline run {query id: {document id: score}}, top k per query; ties broken
    by corpus order. Scores a block of queries at a time (module docstring)."""
    from samtone_tf.data.common import CorpusRows

    rows = CorpusRows(collection.corpus)
    query_ids = list(collection.queries)
    run = {}
    for start, scores in score_blocks(collection, query_ids, k1, b):
        indices, values = top_k_rows(scores, k)
        names = rows.ids_at(indices.ravel())
        width = indices.shape[1]
        for row in range(len(scores)):
            run[query_ids[start + row]] = {
                names[row * width + i]: float(values[row, i]) for i in range(width)}
    return run
