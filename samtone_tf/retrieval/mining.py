"""Hard-negative mining with a dense model (or BM25) and false-negative filters.

For each judged training query, every document of the corpus is ranked by its score
(best first; ties: corpus order). Candidates are the documents at 0-based ranks
``start <= r < end`` of that ranking; walking down it, a candidate is kept unless

* it is judged relevant for the query (relevance > 0)             → "positive"
* score > s⁺ − ``absolute_margin``                                  → "absolute_margin"
* score > ``relative_margin`` · s⁺                                  → "relative_margin"
* score > ``max_score``                                             → "max_score"

where s⁺ = the score of the query's *lowest-scoring* positive, so no kept negative
beats any positive by the margins. The first ``num`` kept candidates are the query's
negatives. A removed candidate is counted under the first rule it fails, among the
candidates looked at before ``num`` were kept (or the window ended). Margins follow
the field's practice (sentence-transformers' ``mine_hard_negatives``, NV-Retriever's
positive-aware mining, FlagEmbedding's rank window 10–210); note that our
``relative_margin`` R is the factor itself (score ≤ 0.95·s⁺ for R = 0.95), where
sentence-transformers' ``relative_margin=0.05`` means the same rule.

The result is written as a TREC run (:func:`samtone_tf.data.runs.write_trec_run`)
that ``data.hard_negatives: <file>`` reads back.

Example (scores are inner products of the given embeddings):

>>> import numpy as np
>>> q = np.array([[1.0, 0.0]], "float32")
>>> d = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]], "float32")
>>> negatives, report = mine_from_embeddings(q, d, ["q"], ["p", "a", "b", "c"],
...                                          {"q": {"p": 1}}, num=2, absolute_margin=0.2)
>>> [(doc, round(score, 2)) for doc, score in negatives["q"]]
[('b', 0.5), ('c', 0.0)]
>>> report["removed"]
{'positive': 1, 'absolute_margin': 1, 'relative_margin': 0, 'max_score': 0}
"""

from __future__ import annotations

import numpy as np

from samtone_tf.errors import ConfigError, DataError
from samtone_tf.retrieval.bm25 import bm25_ranked, score_of
from samtone_tf.data.common import CorpusRows
from samtone_tf.retrieval.corpus import encode_corpus
from samtone_tf.retrieval.encoder import encode_in_shards
from samtone_tf.retrieval.search import exact_search

RULES = ("positive", "absolute_margin", "relative_margin", "max_score")


def parse_range(text):
    """"START-END" → (start, end) with 0 <= start < end; "START-" → (start, None)."""
    start, sep, end = str(text).partition("-")
    try:
        start, end = int(start), (int(end) if end else None)
    except ValueError:
        raise ValueError(f"range must be START-END (0-based ranks, END excluded), got "
                         f"{text!r}") from None
    if not sep or start < 0 or (end is not None and end <= start):
        raise ValueError(f"range must be START-END with 0 <= START < END, got {text!r}")
    return start, end


def _check(num, start, end, absolute_margin, relative_margin, max_score, documents):
    if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
        raise ConfigError(f"num must be a positive integer, got {num!r}")
    if start < 0 or (end is not None and end <= start):
        raise ConfigError(f"the rank window must have 0 <= start < end, got [{start}, {end})")
    if start >= documents:  # the window would be empty: nothing could ever be mined
        raise ConfigError(f"the rank window starts at rank {start}, but the corpus ranks only "
                         f"{documents} documents (ranks 0-{documents - 1})")
    for name, value in (("absolute_margin", absolute_margin),
                        ("relative_margin", relative_margin), ("max_score", max_score)):
        if value is not None and not np.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")


def select(ranked, positives, positive_score, num, absolute_margin=None,
           relative_margin=None, max_score=None, counts=None):
    """The first ``num`` candidates of ``ranked`` ([(doc id, score), ...] in rank order,
    from the window's start) that pass the rules; ``counts`` (a dict) gets one more for
    the rule that removed each rejected candidate."""
    counts = counts if counts is not None else dict.fromkeys(RULES, 0)
    kept = []
    for doc_id, score in ranked:
        if len(kept) == num:
            break
        if doc_id in positives:
            rule = "positive"
        elif absolute_margin is not None and score > positive_score - absolute_margin:
            rule = "absolute_margin"
        elif relative_margin is not None and score > relative_margin * positive_score:
            rule = "relative_margin"
        elif max_score is not None and score > max_score:
            rule = "max_score"
        else:
            kept.append((doc_id, float(score)))
            continue
        counts[rule] += 1
    return kept, counts


def mine_ranked(query_ids, document_ids, indices, scores, positive_scores, qrels, num,
                start=0, absolute_margin=None, relative_margin=None, max_score=None):
    """Negatives from rankings: ``indices`` / ``scores`` [Q, K] hold ranks ``0..K-1``
    of each query (best first); ``positive_scores`` [Q] is s⁺. Returns
    ({query id: [(doc id, score), ...]}, report)."""
    counts = dict.fromkeys(RULES, 0)
    negatives, short = {}, 0
    for row, query_id in enumerate(query_ids):
        positives = {d for d, r in qrels.get(query_id, {}).items() if r > 0}
        names = (document_ids.ids_at(indices[row, start:]) if hasattr(document_ids, "ids_at")
                 else [document_ids[i] for i in indices[row, start:]])
        ranked = list(zip(names, scores[row, start:]))
        kept, _ = select(ranked, positives, float(positive_scores[row]), num,
                         absolute_margin, relative_margin, max_score, counts)
        negatives[query_id] = kept
        short += len(kept) < num
    report = {"queries": len(query_ids), "num": num, "kept": sum(map(len, negatives.values())),
              "removed": counts, "queries_with_fewer_than_num": short}
    return negatives, report


def _judged(query_ids, document_ids, qrels):
    """Rows of judged queries with at least one positive in the corpus, and for each
    the corpus indices of its positives (``document_ids``: a list, or row-wise ids with
    ``rows_of``, :class:`samtone_tf.data.common.CorpusRows`)."""
    wanted = [(row, d) for row, query_id in enumerate(query_ids)
              for d, r in qrels.get(query_id, {}).items() if r > 0]
    if hasattr(document_ids, "rows_of"):
        found = document_ids.rows_of([d for _, d in wanted])
    else:
        position = {d: i for i, d in enumerate(document_ids)}
        found = [position.get(d, -1) for _, d in wanted]
    by_row = {}
    for (row, _), index in zip(wanted, found):
        if index >= 0:
            by_row.setdefault(row, []).append(int(index))
    if not by_row:
        raise DataError("no judged query has a relevant document in the corpus: nothing to mine")
    rows = sorted(by_row)
    return rows, [by_row[row] for row in rows]


def mine_from_embeddings(query_embeddings, document_embeddings, query_ids, document_ids,
                         qrels, num=1, window=(0, None), absolute_margin=None,
                         relative_margin=None, max_score=None):
    """Dense mining: scores are inner products (cosines for L2-normalised embeddings),
    ranked with :func:`samtone_tf.retrieval.search.exact_search` (exact; ties keep corpus
    order). ``window`` = (start, end), 0-based ranks, end excluded (None: the whole
    corpus). Only judged queries with a positive in the corpus are mined. Returns
    ({query id: [(doc id, score), ...]}, report)."""
    start, end = window
    documents = np.asarray(document_embeddings, np.float32)
    _check(num, start, end, absolute_margin, relative_margin, max_score, len(documents))
    queries = np.asarray(query_embeddings, np.float32)
    rows, positives = _judged(query_ids, document_ids, qrels)
    queries = queries[rows]
    depth = len(documents) if end is None else min(end, len(documents))
    scores, indices = exact_search(queries, documents, k=depth)
    positive_scores = np.array([np.min(documents[p] @ q) for q, p in zip(queries, positives)])
    negatives, report = mine_ranked([query_ids[r] for r in rows], document_ids, indices, scores,
                                    positive_scores, qrels, num, start, absolute_margin,
                                    relative_margin, max_score)
    report.update(window=[start, end], source="dense")
    return negatives, report


def mine_from_model(model, collection, num=1, window=(0, None), absolute_margin=None,
                    relative_margin=None, max_score=None, batch_size=64, progress=False):
    """Encodes the judged queries of ``collection`` and its whole corpus with
    ``model`` (a DualEncoder or a reloaded SavedModel) and mines (see
    :func:`mine_from_embeddings`)."""
    _check(num, *window, absolute_margin, relative_margin, max_score,  # before encoding
           len(collection.corpus))
    queries, documents, query_ids, document_ids = encode_for_mining(model, collection,
                                                                    batch_size, progress)
    return mine_from_embeddings(queries, documents, query_ids, document_ids, collection.qrels,
                                num, window, absolute_margin, relative_margin, max_score)


def encode_for_mining(model, collection, batch_size=64, progress=False):
    """(query embeddings, document embeddings, query ids, document ids): the judged
    queries of ``collection`` and its whole corpus, the inputs of
    :func:`mine_from_embeddings` (encode once, mine with several filters)."""
    query_ids = [q for q in collection.queries if q in collection.qrels]
    if hasattr(collection.corpus, "rows_of"):  # a stored corpus: memory-mapped shards
        import tempfile

        document_ids = CorpusRows(collection.corpus)
        with tempfile.TemporaryDirectory(prefix=".samtone-encode-") as work_dir:
            documents = encode_in_shards(model, document_ids, work_dir,
                                         shard_size=int(batch_size) * 1024,
                                         batch_size=batch_size, progress=progress)
    else:
        document_ids = list(collection.corpus)
        documents = encode_corpus(model, [collection.corpus[d].full_text
                                          for d in document_ids],
                                  batch_size, progress=progress, side="document",
                                  ids=document_ids)
    queries = encode_corpus(model, [collection.queries[q] for q in query_ids], batch_size,
                            progress=progress, side="query", ids=query_ids)
    return queries, documents, query_ids, document_ids


def mine_bm25(collection, num=1, window=(0, None), absolute_margin=None,
              relative_margin=None, max_score=None, block=1024):
    """As :func:`mine_from_embeddings` with BM25 scores instead of a model's, ranked one
    query at a time from the inverted index and mined ``block`` queries at a time
    (:func:`samtone_tf.retrieval.bm25.bm25_ranked`), so memory holds the index and one
    block's rankings, whatever the number of queries."""
    start, end = window
    _check(num, start, end, absolute_margin, relative_margin, max_score,
           len(collection.corpus))
    query_ids = list(collection.queries)
    document_ids = CorpusRows(collection.corpus)
    rows, positives = _judged(query_ids, document_ids, collection.qrels)
    judged = [query_ids[r] for r in rows]
    depth = len(document_ids) if end is None else min(end, len(document_ids))
    negatives, report = {}, None
    pending = []

    def flush():
        nonlocal report
        ids = [p[0] for p in pending]
        part, counts = mine_ranked(ids, document_ids, np.stack([p[1] for p in pending]),
                                   np.stack([p[2] for p in pending]),
                                   np.array([p[3] for p in pending]), collection.qrels, num,
                                   start, absolute_margin, relative_margin, max_score)
        negatives.update(part)
        if report is None:
            report = counts
        else:
            for key in ("queries", "kept", "queries_with_fewer_than_num"):
                report[key] += counts[key]
            for rule, count in counts["removed"].items():
                report["removed"][rule] += count
        pending.clear()

    for position, (query_id, top, values, matched) in enumerate(
            bm25_ranked(collection, judged, depth)):
        pending.append((query_id, top, values, score_of(matched, positives[position]).min()))
        if len(pending) == block:
            flush()
    if pending:
        flush()
    report.update(window=[start, end], source="bm25")
    return negatives, report


def as_run(negatives):
    """{query id: [(doc id, score), ...]} → a run {query id: {doc id: score}}."""
    return {q: dict(kept) for q, kept in negatives.items() if kept}
