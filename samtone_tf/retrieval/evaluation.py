"""Evaluating a model or an index on a collection: :func:`evaluate_model` encodes the
corpus and the judged queries (:mod:`~samtone_tf.retrieval.corpus`), searches exactly
(:mod:`~samtone_tf.retrieval.search`) to at least the deepest cutoff and scores the run
(:mod:`~samtone_tf.retrieval.metrics`); :func:`evaluate_index` scores what a retrieval
SavedModel serves, through its own ``search`` signature.
"""

from __future__ import annotations

import contextlib
import tempfile

import numpy as np
import tensorflow as tf

from samtone_tf.data.common import CorpusRows
from samtone_tf.errors import DataError
from samtone_tf.retrieval.corpus import encode_corpus, model_fingerprint
from samtone_tf.retrieval.encoder import encode_in_shards
from samtone_tf.retrieval.index import index_ids, load_index
from samtone_tf.retrieval.metrics import CUTOFFS, cut_run, evaluate_run
from samtone_tf.retrieval.quantization import truncate
from samtone_tf.retrieval.search import exact_search, run_from_search


def evaluate_model(model, collection, k=100, batch_size=64, ignore_identical_ids=False,
                   cache_dir=None, progress=False, backend="tf", dims=None):
    """Encodes ``collection`` (a :class:`~samtone_tf.data.common.Collection`) with
    ``model`` (a DualEncoder or a reloaded SavedModel) and returns
    ``(summary, per_query, run)``. ``backend``: see :func:`exact_search` (the TF path
    by default: the retrieval artifact's tie order). ``dims``: score the first ``dims`` coordinates of
    both sides, re-normalised (:func:`samtone_tf.retrieval.quantization.truncate`)."""
    if not collection.corpus:
        raise DataError(f"{collection.path}: the corpus is empty; nothing to evaluate")
    if not collection.qrels:
        raise DataError(f"{collection.path}: split {collection.split!r} has no judged query; "
                         "nothing to evaluate")
    rows = CorpusRows(collection.corpus)
    query_ids = list(collection.queries)
    fingerprint = model_fingerprint(model) if cache_dir else None
    with contextlib.ExitStack() as stack:
        work_dir = cache_dir or stack.enter_context(tempfile.TemporaryDirectory(
            prefix=".samtone-encode-"))
        # whole batches per shard: the batches (and vectors) of one pass over the corpus
        documents = encode_in_shards(model, rows, work_dir, shard_size=int(batch_size) * 1024,
                                     batch_size=batch_size, progress=progress)
    queries = encode_corpus(model, [collection.queries[q] for q in query_ids], batch_size,
                            cache_dir, fingerprint, progress, "query", query_ids)
    if dims is not None:
        queries, documents = truncate(queries, dims), truncate(documents, dims)
    # Metrics are computed from a ranking at least as deep as their deepest cutoff,
    # whatever k is: k only cuts the returned run (a run cut at 5 once gave nDCG@10 0.0).
    depth = max(int(k), max(CUTOFFS))
    extra = 1 if ignore_identical_ids else 0
    scores, indices = exact_search(queries, documents, k=depth + extra, backend=backend)
    run = cut_run(run_from_search(query_ids, rows, scores, indices, ignore_identical_ids),
               depth)
    summary, per_query = evaluate_run(collection.qrels, run)
    summary["ignore_identical_ids"] = bool(ignore_identical_ids)
    if dims is not None:
        summary["dims"] = int(dims)
    return summary, per_query, cut_run(run, k)




def evaluate_index(path, collection, k=100, batch_size=64, ignore_identical_ids=False):
    """Evaluates what an index serves: every judged query through its own ``search``
    signature (its quantization, dimensions and re-scoring), not through a float
    encoder. Returns ``(summary, per_query, run)`` as
    :func:`samtone_tf.retrieval.evaluation.evaluate_model` does; metrics deeper than the index's
    ``max_k`` are left out (``summary["left_out"]``) unless that covers the corpus."""
    module, description = load_index(path)
    ids = index_ids(module, path)
    corpus = set(collection.corpus)
    if len(ids) != len(corpus) or not corpus.issuperset(ids):
        missing = next((i for i in ids if i not in corpus), None)
        raise DataError(f"{path}: indexes {len(ids)} documents, not the {len(corpus)} of "
                        f"{collection.path}" + (f" (document {missing!r} is not in it)"
                                                if missing is not None else ""))
    extra = 1 if ignore_identical_ids else 0
    searched = min(max(int(k), max(CUTOFFS)) + extra, int(description["max_k"]))
    complete = searched >= len(ids)
    query_ids = [q for q in collection.queries]
    run = {}
    for start in range(0, len(query_ids), batch_size):
        rows = query_ids[start:start + batch_size]
        try:
            found = module.search(tf.constant([collection.queries[q] for q in rows]),
                                  tf.constant(searched, tf.int32))
        except tf.errors.OpError as error:
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            raise DataError(f"{path}: search failed ({type(error).__name__}: {reason})") from None
        scores, names = found["scores"].numpy(), found["ids"].numpy()
        if not np.isfinite(scores).all():
            raise DataError(f"{path}: search returned NaN/Inf scores; refusing to compute "
                            "metrics from them")
        for query_id, row_scores, row_ids in zip(rows, scores, names):
            ranked = {}
            for score, name in zip(row_scores, row_ids):
                name = name.decode("utf-8")
                if not (ignore_identical_ids and name == query_id):
                    ranked[name] = float(score)
            run[query_id] = ranked
    depth = None if complete else searched - extra
    run = cut_run(run, searched - extra)
    summary, per_query = evaluate_run(collection.qrels, run, depth=depth)
    summary.update(ignore_identical_ids=bool(ignore_identical_ids), index=True,
                   quantization=description.get("quantization"), dims=description.get("dims"))
    return summary, per_query, cut_run(run, k)
