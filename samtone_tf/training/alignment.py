"""The paper's two measures of a dual encoder's geometry: are the two towers' embeddings
one space, and how do similarities distribute?

* :func:`tower_separation`: N queries and their N positive documents (default
  400 + 400, as Dong et al. 2022) from both towers → a 2-D t-SNE (scikit-learn) for
  the picture, and a number: the 5-fold cross-validated accuracy of a linear probe
  (logistic regression) telling query embeddings from document embeddings. 0.5
  means fully mixed (one cloud); 1.0 means two separable clouds.
* :func:`similarity_statistics`: the top-1 retrieval similarity of every query over
  the corpus, and s(qᵢ,qⱼ) / s(qᵢ,dⱼ) (i ≠ j) over the sampled pairs.

:class:`~samtone_tf.training.callbacks.TowerAlignment` measures them during ``fit``;
:mod:`samtone_tf.runs.plots` draws them.
"""

from __future__ import annotations

import numpy as np


def sample_pairs(collection, n=400, seed=0):
    """Up to n (query text, positive document text) pairs, one per query."""
    rng = np.random.default_rng(seed)
    query_ids = sorted(collection.qrels)
    rng.shuffle(query_ids)
    pairs = []
    for query_id in query_ids:
        positives = sorted(d for d, r in collection.qrels[query_id].items() if r > 0)
        if positives:
            pairs.append((collection.queries[query_id],
                          collection.corpus[positives[0]].full_text))
        if len(pairs) == n:
            break
    return pairs


def tower_separation(query_embeddings, document_embeddings, seed=0, tsne=True):
    """Returns {"probe_accuracy", "probe_accuracy_std", "tsne": [2N, 2] or None}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import TSNE
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.concatenate([query_embeddings, document_embeddings]).astype(np.float64)
    y = np.concatenate([np.zeros(len(query_embeddings)), np.ones(len(document_embeddings))])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=folds)
    coords = None
    if tsne:
        perplexity = min(30.0, (len(x) - 1) / 3)
        coords = TSNE(n_components=2, perplexity=perplexity, random_state=seed,
                      init="pca").fit_transform(x)
    return {"probe_accuracy": float(scores.mean()), "probe_accuracy_std": float(scores.std()),
            "tsne": coords}


def similarity_statistics(query_embeddings, document_embeddings, corpus_embeddings=None,
                          retrieval_queries=None):
    """The off-diagonal query–query and query–document similarities of the sampled
    pairs, their positive similarities, and (with ``corpus_embeddings``) the top-1
    retrieval similarity of each of ``retrieval_queries`` (default: the sampled
    queries) over the corpus."""
    q, d = np.asarray(query_embeddings), np.asarray(document_embeddings)
    off = ~np.eye(len(q), dtype=bool)
    out = {"query_query": (q @ q.T)[off], "query_document": (q @ d.T)[off],
           "positive": np.sum(q * d, axis=1)}
    if corpus_embeddings is not None:
        anchors = q if retrieval_queries is None else np.asarray(retrieval_queries)
        out["top1"] = top1_similarity(anchors, corpus_embeddings)
    return out


def top1_similarity(queries, corpus, chunk=65536):
    """The highest inner product of each query over the corpus (float32), a block of
    ``chunk`` documents at a time (memory: queries × chunk scores)."""
    queries = np.asarray(queries, np.float32)
    corpus = np.asarray(corpus, np.float32)
    best = np.full(len(queries), -np.inf, np.float32)
    for start in range(0, len(corpus), chunk):
        best = np.maximum(best, (queries @ corpus[start:start + chunk].T).max(axis=1))
    return best


def encode_pairs(encoder, pairs, batch_size=16):
    """Sampled (query, document) text pairs → (queries [n, dim], documents [n, dim]),
    each side through its own encoder, ``batch_size`` rows at a time; ``encoder``: a
    DualEncoder or a loaded export (anything with ``encode_queries/encode_documents``)."""
    return (encoder.encode_queries([q for q, _ in pairs], batch_size=batch_size),
            encoder.encode_documents([d for _, d in pairs], batch_size=batch_size))
