"""BM25 (Lucene's variant) over a collection: scores and a baseline run."""

from __future__ import annotations

import numpy as np


def bm25_scores(collection, k1=0.9, b=0.4):
    """BM25 scores of every query against every document: (query ids, document ids,
    float64 [Q, N]).

    Lucene's BM25 (idf = ln(1 + (N - n + 0.5) / (n + 0.5))), lower-cased ``\\w+``
    tokens, no stemming, no stop words.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    doc_ids = list(collection.corpus)
    vectorizer = CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b")
    tf_matrix = vectorizer.fit_transform(
        [collection.corpus[d].full_text for d in doc_ids]).tocsr().astype(np.float64)
    lengths = np.asarray(tf_matrix.sum(axis=1)).ravel()
    n_docs = tf_matrix.shape[0]
    df = np.bincount(tf_matrix.indices, minlength=tf_matrix.shape[1])
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1e-9))
    weights = tf_matrix.copy()
    rows = np.repeat(np.arange(n_docs), np.diff(weights.indptr))
    weights.data = idf[weights.indices] * weights.data * (k1 + 1) / (weights.data + norm[rows])
    weights = weights.T.tocsr()  # terms × docs
    query_ids = list(collection.queries)
    query_terms = vectorizer.transform([collection.queries[q] for q in query_ids])
    return query_ids, doc_ids, np.asarray((query_terms @ weights).todense())


def bm25_run(collection, k=100, k1=0.9, b=0.4):
    """A BM25 baseline run (:func:`bm25_scores`): {query id: {document id: score}}, top
    k per query; ties broken by corpus order."""
    query_ids, doc_ids, scores = bm25_scores(collection, k1, b)
    run = {}
    for row, query_id in enumerate(query_ids):
        top = np.argsort(-scores[row], kind="stable")[:k]
        run[query_id] = {doc_ids[i]: float(scores[row, i]) for i in top}
    return run
