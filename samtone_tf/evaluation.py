"""Retrieval evaluation: encode a corpus, exact chunked top-k search, IR metrics.

* :func:`exact_search`: top-k by cosine (inner product of L2-normalised vectors),
  computed by chunked matrix products and ``tf.math.top_k`` with a running merge,
  so memory is O(query_chunk × (doc_chunk + k)), never queries × corpus. Ties go
  to the lower document index, as in a full-matrix ``top_k``.
* :func:`evaluate_run`: nDCG@k, MRR@k, P@k, Recall@k, MAP@k (k in 1, 3, 5, 10, 100)
  by pytrec_eval (``pytrec-eval-terrier``), averaged over every judged query (a
  query with no retrieved document scores 0). MRR@k is pytrec_eval's reciprocal
  rank over the run cut at k. ``ignore_identical_ids`` drops a retrieved document
  whose id equals the query id (BEIR's default; right for Quora/ArguAna, wrong for
  Cranfield, whose query and document ids share a number space by accident).
* :func:`evaluate_model`: a DualEncoder (or anything with ``encode_queries`` /
  ``encode_documents`` on strings) on a BEIR collection.

The summary keys are "ndcg@10", "mrr@10", "p@1", "recall@100", "map@100" and all
the other "metric@k" pairs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from samtone_tf.errors import DataError

CUTOFFS = (1, 3, 5, 10, 100)
HEADLINE = ("ndcg@10", "mrr@10", "p@1", "recall@100", "map@100")


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
            path on the third session's machine, the TF path 2.3× FAISS on the fourth's.
    Returns:
        (scores [Q, k] float32, indices [Q, k] int64), best first.
    """
    queries = np.asarray(queries, np.float32)
    documents = np.asarray(documents, np.float32)
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
    doc_chunks = [(start, tf.constant(documents[start:start + document_chunk]))
                  for start in range(0, len(documents), document_chunk)]
    all_scores, all_indices = [], []
    for q_start in range(0, len(queries), query_chunk):
        q = tf.constant(queries[q_start:q_start + query_chunk])
        best_scores = best_indices = None
        for d_start, d in doc_chunks:
            scores, indices = _chunk_top_k(q, d, min(k, int(d.shape[0])), d_start)
            if best_scores is not None:  # earlier (lower-index) results first: ties keep them
                scores = tf.concat([best_scores, scores], axis=1)
                indices = tf.concat([best_indices, indices], axis=1)
                scores, position = tf.math.top_k(scores, k=min(k, int(scores.shape[1])))
                indices = tf.gather(indices, position, batch_dims=1)
            best_scores, best_indices = scores, indices
        all_scores.append(best_scores.numpy())
        all_indices.append(best_indices.numpy())
    return np.concatenate(all_scores), np.concatenate(all_indices).astype(np.int64)


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
    """{query id: {document id: score}} from search results."""
    run = {}
    for row, query_id in enumerate(query_ids):
        ranked = {}
        for score, index in zip(scores[row], indices[row]):
            doc_id = document_ids[index]
            if ignore_identical_ids and doc_id == query_id:
                continue
            ranked[doc_id] = float(score)
        run[query_id] = ranked
    return run


def _cut(run, k):
    """The top k documents of each query (score descending, then id descending, as
    trec_eval orders ties)."""
    out = {}
    for query_id, docs in run.items():
        ranked = sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)
        out[query_id] = dict(ranked[:k])
    return out


def evaluate_run(qrels, run, cutoffs=CUTOFFS, ignore_identical_ids=False, depth=None):
    """Mean metrics over the judged queries, plus per-query values.

    ``depth``: the number of documents per query the run was cut at by its search
    (None: each ranking is complete, or at least as deep as every cutoff). A metric
    at a cutoff deeper than ``depth`` would be computed from a truncated ranking and
    understate the truth, so it is left out: the summary then lists those keys under
    "left_out" (with "search_depth") instead of reporting a number for them.

    Returns ``(summary, per_query)``: summary maps "ndcg@10" etc. to floats;
    per_query maps query id → the same keys.
    """
    import pytrec_eval

    if not qrels:
        raise DataError("no judged query: metrics over an empty set are undefined")
    kept = tuple(k for k in cutoffs if depth is None or k <= depth)
    left_out = sorted(f"{m}@{k}" for m in ("ndcg", "mrr", "p", "recall", "map")
                      for k in cutoffs if k not in kept)
    cutoffs = kept
    if ignore_identical_ids:
        run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    qrels = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    run = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}
    # pytrec_eval skips queries absent from the run; give them an empty ranking → 0.
    run = {q: run.get(q, {}) for q in qrels}
    per_query = {q: {} for q in qrels}
    measures = {f"ndcg_cut.{k}" for k in cutoffs} | {f"P.{k}" for k in cutoffs} | {
        f"recall.{k}" for k in cutoffs} | {f"map_cut.{k}" for k in cutoffs}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures)
    names = {"ndcg_cut": "ndcg", "P": "p", "recall": "recall", "map_cut": "map"}
    for query_id, values in evaluator.evaluate(_nonempty(run)).items():
        for key, value in values.items():
            metric, k = key.rsplit("_", 1)
            per_query[query_id][f"{names[metric]}@{k}"] = value
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    for k in cutoffs:
        for query_id, values in rr.evaluate(_nonempty(_cut(run, k))).items():
            per_query[query_id][f"mrr@{k}"] = values["recip_rank"]
    keys = sorted({key for values in per_query.values() for key in values} | {
        f"{m}@{k}" for m in ("ndcg", "mrr", "p", "recall", "map") for k in cutoffs})
    for values in per_query.values():
        for key in keys:
            values.setdefault(key, 0.0)
    summary = {key: float(np.mean([per_query[q][key] for q in per_query])) for key in keys}
    if left_out:
        summary.update(search_depth=int(depth), left_out=left_out)
    return summary, per_query


def _nonempty(run):
    return {q: docs for q, docs in run.items() if docs}


class NonFiniteEmbeddingsError(DataError):
    """An encoder returned NaN/Inf; nothing is scored from it."""


def check_finite_embeddings(embeddings, side="document", ids=None):
    """Raises NonFiniteEmbeddingsError naming the first bad row (its id when given)."""
    bad = ~np.isfinite(embeddings).all(axis=1) if embeddings.size else np.zeros(0, bool)
    if bad.any():
        first = int(np.argmax(bad))
        name = f"id {ids[first]!r}" if ids is not None else f"row {first}"
        raise NonFiniteEmbeddingsError(
            f"{int(bad.sum())} of {len(embeddings)} {side} embeddings hold NaN/Inf (first: "
            f"{name}); refusing to compute metrics from them")


def encode_corpus(model, texts, batch_size=256, cache_dir=None, fingerprint=None,
                  progress=True, side="document", ids=None):
    """Encodes texts in chunks with a progress bar; refuses NaN/Inf embeddings.

    With ``cache_dir`` and a model ``fingerprint`` (:func:`model_fingerprint`: weights,
    tokenizer assets, max lengths, dimension), embeddings are cached in
    ``cache_dir/<sha256>.npy``, keyed by the fingerprint, the side and every text, with
    a ``.json`` record of rows, dimension, dtype and a checksum. A cached file is used
    only when it matches that record, has one row per text and is finite; otherwise it
    is re-encoded with a warning."""
    import keras

    cache_path = None
    if cache_dir is not None and fingerprint is not None:
        cache_path = embedding_cache_path(cache_dir, fingerprint, side, texts)
        cached = _read_cache(cache_path, len(texts), getattr(model, "embedding_dim", None))
        if cached is not None:
            return cached
    encode = model.encode_documents if side == "document" else model.encode_queries
    chunk = max(batch_size * 16, 1)
    bar = keras.utils.Progbar(len(texts), unit_name=side) if progress and texts else None
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(encode(texts[start:start + chunk], batch_size=batch_size))
        if bar is not None:
            bar.add(len(parts[-1]))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    check_finite_embeddings(embeddings, side, ids)
    if cache_path is not None:
        _write_cache(cache_path, np.ascontiguousarray(embeddings, np.float32))
    return embeddings


def embedding_cache_path(cache_dir, fingerprint, side, texts):
    """``cache_dir/<sha256>.npy``: the cache file of ``encode_corpus`` for these texts
    (keyed by the model fingerprint, the side and every text)."""
    import hashlib
    import os

    digest = hashlib.sha256(f"{fingerprint}|{side}|{len(texts)}".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return os.path.join(cache_dir, digest.hexdigest() + ".npy")


def read_embedding_cache(path, rows, dim=None):
    """The verified cached array at ``path`` (see :func:`encode_corpus`), or None when
    it is not there or not complete yet (its ``.json`` record is written last)."""
    import os

    if not os.path.exists(path[:-len(".npy")] + ".json"):
        return None
    return _read_cache(path, rows, dim)


def _checksum(array):
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _read_cache(path, rows, dim=None):
    """The cached array when it is exactly what was written for these texts, else
    None (with a warning when a file was there but did not pass)."""
    import json
    import os
    import warnings

    if not os.path.exists(path):
        return None
    try:
        with open(path[:-len(".npy")] + ".json", encoding="utf-8") as handle:
            record = json.load(handle)
        array = np.load(path, allow_pickle=False)
        problems = [
            (array.ndim != 2, f"shape {array.shape} is not [rows, dim]"),
            (array.ndim == 2 and array.shape[0] != rows, f"{len(array)} rows for {rows} texts"),
            (array.ndim == 2 and dim is not None and array.shape[1] != int(dim),
             f"dimension {array.shape[-1]}, the model's is {dim}"),
            (array.dtype != np.float32, f"dtype {array.dtype}, expected float32"),
            (list(array.shape) != record.get("shape"), "shape differs from its record"),
            (not np.isfinite(array).all(), "non-finite values"),
            (_checksum(array) != record.get("sha256"), "checksum differs from its record "
                                                       "(changed or reordered)")]
        problem = next((why for bad, why in problems if bad), None)
    except (OSError, ValueError, KeyError, AttributeError) as error:
        problem = f"unreadable ({type(error).__name__}: {error})"
    if problem is None:
        return array
    warnings.warn(f"embedding cache {path}: {problem}; re-encoding", stacklevel=3)
    return None


def _write_cache(path, embeddings):
    import os

    from samtone_tf.files import atomic_path, write_json_atomic

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path, suffix=".npy") as temporary:
        np.save(temporary, embeddings)
    write_json_atomic(path[:-len(".npy")] + ".json", {
        "shape": list(embeddings.shape), "dtype": "float32", "sha256": _checksum(embeddings)})


def _settings(obj):
    """The public attributes of ``obj`` that JSON can write, as sorted JSON: the
    whole configuration of a backbone spec (tokenizer settings such as ``lowercase``,
    vocabulary, sizes) without naming each one."""
    import json

    out = {}
    for key, value in sorted(vars(obj).items()):
        if key.startswith("_"):
            continue
        try:
            out[key] = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError):
            continue
    return json.dumps(out, sort_keys=True)


def model_fingerprint(model):
    """sha256 over everything that shapes a model's embeddings: weights, the model's
    configuration (architecture, pooling, max lengths, padding, ...), the backbone's
    whole configuration (tokenizer settings such as lower-casing included) and its
    tokenizer assets (vocabulary / SentencePiece model) by content; for a reloaded
    SavedModel every file of the SavedModel (graph with its tokenizer and lengths,
    assets, variables)."""
    import hashlib
    import json
    import os

    digest = hashlib.sha256(repr(getattr(model, "backbone", model)).encode())
    for name in ("architecture", "query_max_length", "document_max_length", "pooling",
                 "embedding_dim"):
        digest.update(f"{name}={getattr(model, name, None)!r};".encode())
    if callable(getattr(model, "get_config", None)):
        config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable")}
        digest.update(json.dumps(config, sort_keys=True, default=repr).encode())
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        digest.update(_settings(backbone).encode())
    for name in ("vocabulary", "vocab_path", "model_path"):
        asset = getattr(backbone, name, None)
        if isinstance(asset, str) and os.path.isfile(asset):
            with open(asset, "rb") as handle:
                digest.update(handle.read())
    folder = getattr(model, "path", None)
    if isinstance(folder, str) and os.path.isdir(folder):  # SavedModelEncoder
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, folder).encode())
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
        return digest.hexdigest()
    for weight in getattr(model, "weights", []):
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def evaluate_model(model, collection, k=100, batch_size=64, ignore_identical_ids=False,
                   cache_dir=None, progress=False, backend="tf", dims=None):
    """Encodes ``collection`` (a :class:`~samtone_tf.data.common.Collection`) with
    ``model`` (a DualEncoder or a reloaded SavedModel) and returns
    ``(summary, per_query, run)``. ``backend``: see :func:`exact_search` (the TF path
    by default: the retrieval artifact's tie order). ``dims``: score the first ``dims`` coordinates of
    both sides, re-normalised (:func:`samtone_tf.index.truncate`)."""
    if not collection.corpus:
        raise DataError(f"{collection.path}: the corpus is empty; nothing to evaluate")
    if not collection.qrels:
        raise DataError(f"{collection.path}: split {collection.split!r} has no judged query; "
                         "nothing to evaluate")
    doc_ids = list(collection.corpus)
    query_ids = list(collection.queries)
    fingerprint = model_fingerprint(model) if cache_dir else None
    documents = encode_corpus(model, [collection.corpus[d].full_text for d in doc_ids],
                              batch_size, cache_dir, fingerprint, progress, "document", doc_ids)
    queries = encode_corpus(model, [collection.queries[q] for q in query_ids], batch_size,
                            cache_dir, fingerprint, progress, "query", query_ids)
    if dims is not None:
        from samtone_tf.index import truncate

        queries, documents = truncate(queries, dims), truncate(documents, dims)
    # Metrics are computed from a ranking at least as deep as their deepest cutoff,
    # whatever k is: k only cuts the returned run (a run cut at 5 once gave nDCG@10 0.0).
    depth = max(int(k), max(CUTOFFS))
    extra = 1 if ignore_identical_ids else 0
    scores, indices = exact_search(queries, documents, k=depth + extra, backend=backend)
    run = _cut(run_from_search(query_ids, doc_ids, scores, indices, ignore_identical_ids),
               depth)
    summary, per_query = evaluate_run(collection.qrels, run)
    summary["ignore_identical_ids"] = bool(ignore_identical_ids)
    if dims is not None:
        summary["dims"] = int(dims)
    return summary, per_query, _cut(run, k)


def markdown_table(rows, keys=HEADLINE):
    """rows: {name: summary} → a markdown table string."""
    lines = ["| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, summary in rows.items():  # a metric left out for a shallow search: "—"
        lines.append(f"| {name} | " + " | ".join(
            f"{summary[k]:.4f}" if k in summary else "—" for k in keys) + " |")
    return "\n".join(lines)



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
