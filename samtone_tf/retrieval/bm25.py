"""BM25 (Lucene's variant) over a collection: an inverted index, scores, a baseline run,
top-k per query, and hard negatives, in memory bounded by the index, not the queries.

Score of document d for query q (float64)::

    Σ_{t ∈ q} idf(t) · tf · (k1 + 1) / (tf + k1 · (1 − b + b · |d| / mean |d|)),
    idf(t) = ln(1 + (N − n_t + 0.5) / (n_t + 0.5))

over lower-cased ``\\w+`` tokens (scikit-learn's ``CountVectorizer`` analyzer, no
stemming, no stop words); a term repeated in the query counts again.

:class:`BM25Index` is the inverted index: per term (sorted), its postings (document
row, term frequency), built in two streaming passes over the corpus (vocabulary and
document frequencies, then postings written in place), so building holds one chunk of
texts, the vocabulary and per-document lengths — never the token lists. For a stored
corpus the index is written once into the store (``bm25-k1_…-b_…/``, memory-mapped
afterwards); an in-memory corpus gets it in memory. A query is scored from its terms'
postings only (the documents sharing a term; every other document scores 0) and only
its top k is kept, so scoring 500k queries holds one block of results, never
[queries × documents] (MS MARCO's training queries would need 35 TB as a matrix).

Why not ``bm25s``: it gives the same scores divided by k1 + 1 (checked to 3e-14 on
SciFact), but its index build holds every document's token ids as Python lists
(billions of objects at MS MARCO size) and stores float32 scores; ours is exact float64
and equal to the former dense computation bit for bit (sums run in term order).
"""

from __future__ import annotations

import json
import os

import numpy as np

from samtone_tf.errors import DataError

TOKENS = dict(lowercase=True, token_pattern=r"(?u)\b\w+\b")
CHUNK_DOCUMENTS = 65_536
BLOCK_QUERIES = 1024
FORMAT = 1


def _vectorizer(vocabulary=None):
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(vocabulary=vocabulary, **TOKENS)


def _chunks(rows, chunk):
    for start in range(0, len(rows), chunk):
        yield start, rows.texts(start, min(start + chunk, len(rows)))


class BM25Index:
    """Postings of every term of a corpus (``indptr`` [T + 1], ``docs`` [nnz] int32 rows,
    ``tf`` [nnz]) with ``idf`` [T] and each document's length normaliser ``norm`` [N];
    arrays in memory or memory-mapped from ``directory``."""

    ARRAYS = ("indptr", "docs", "tf", "idf", "norm")

    def __init__(self, vocabulary, arrays, k1, b):
        self.vocabulary = vocabulary if isinstance(vocabulary, dict) else {
            term: i for i, term in enumerate(vocabulary)}
        for name in self.ARRAYS:
            setattr(self, name, arrays[name])
        self.k1, self.b = float(k1), float(b)

    def __len__(self):
        return len(self.norm)

    # -- building ---------------------------------------------------------------------
    @classmethod
    def build(cls, corpus, k1=0.9, b=0.4, directory=None, chunk=CHUNK_DOCUMENTS):
        """Indexes ``corpus`` (a dict or a stored corpus); with ``directory`` the arrays
        are written there (atomically) and memory-mapped."""
        from samtone_tf.data.common import CorpusRows

        rows = CorpusRows(corpus)
        terms, df, lengths, max_tf = cls._first_pass(rows, chunk)
        ordered = sorted(terms)  # CountVectorizer's column order: sums run in that order
        df = df[np.fromiter((terms[t] for t in ordered), np.int64, len(ordered))]
        del terms
        vocabulary = {term: i for i, term in enumerate(ordered)}
        n_docs = len(rows)
        mean = max(lengths.mean(), 1e-9) if n_docs else 1.0
        small = {"indptr": np.concatenate([[0], np.cumsum(df)]).astype(np.int64),
                 "idf": np.log1p((n_docs - df + 0.5) / (df + 0.5)),
                 "norm": k1 * (1 - b + b * lengths / mean)}
        tf_type = np.uint16 if max_tf <= np.iinfo(np.uint16).max else np.int32

        def fill(folder):
            arrays = dict(small)
            for name, dtype in (("docs", np.int32), ("tf", tf_type)):
                arrays[name] = (np.empty(int(df.sum()), dtype) if folder is None else
                                np.lib.format.open_memmap(os.path.join(folder, f"{name}.npy"),
                                                          "w+", dtype, (int(df.sum()),)))
            cls._second_pass(rows, chunk, vocabulary, arrays)
            if folder is None:
                return arrays
            for name, value in small.items():
                np.save(os.path.join(folder, f"{name}.npy"), value)
            for name in ("docs", "tf"):
                arrays[name].flush()
            with open(os.path.join(folder, "vocabulary.json"), "w", encoding="utf-8") as out:
                json.dump(ordered, out, ensure_ascii=False)
            with open(os.path.join(folder, "index.json"), "w", encoding="utf-8") as out:
                json.dump(cls._record(corpus, k1, b), out)
            return None

        if directory is None:
            return cls(vocabulary, fill(None), k1, b)
        from samtone_tf.files import write_folder_atomic

        write_folder_atomic(directory, fill)
        return cls.open(directory)

    @staticmethod
    def _first_pass(rows, chunk):
        """Provisional term ids, document frequencies, lengths, the largest tf."""
        terms, df = {}, np.zeros(0, np.int64)
        lengths, max_tf = np.zeros(len(rows), np.float64), 0
        for start, texts in _chunks(rows, chunk):
            vectorizer = _vectorizer()
            try:
                counts = vectorizer.fit_transform(texts)
            except ValueError:  # no token in this chunk
                continue
            local = np.empty(len(vectorizer.vocabulary_), np.int64)
            for term, column in vectorizer.vocabulary_.items():
                local[column] = terms.setdefault(term, len(terms))
            df = np.concatenate([df, np.zeros(len(terms) - len(df), np.int64)])
            df += np.bincount(local[counts.indices], minlength=len(terms))
            lengths[start:start + len(texts)] = np.asarray(counts.sum(axis=1)).ravel()
            max_tf = max(max_tf, int(counts.data.max(initial=0)))
        if not terms:
            raise DataError("BM25: the corpus has no word token in any document")
        return terms, df, lengths, max_tf

    @staticmethod
    def _second_pass(rows, chunk, vocabulary, arrays):
        """Writes each chunk's postings after those of the chunks before it."""
        vectorizer = _vectorizer(vocabulary)
        indptr = arrays["indptr"]
        cursor = indptr[:-1].copy()
        for start, texts in _chunks(rows, chunk):
            counts = vectorizer.transform(texts).tocsc()
            per_term = np.diff(counts.indptr)
            place = np.repeat(cursor - counts.indptr[:-1], per_term) + np.arange(counts.nnz)
            arrays["docs"][place] = counts.indices + start
            arrays["tf"][place] = counts.data
            cursor += per_term
        if not np.array_equal(cursor, indptr[1:]):
            raise DataError("BM25: the corpus changed while it was indexed")

    @staticmethod
    def _record(corpus, k1, b):
        return {"format": FORMAT, "k1": float(k1), "b": float(b), "documents": len(corpus),
                "corpus": getattr(corpus, "fingerprint", None)}

    @classmethod
    def open(cls, directory):
        with open(os.path.join(directory, "index.json"), encoding="utf-8") as handle:
            record = json.load(handle)
        with open(os.path.join(directory, "vocabulary.json"), encoding="utf-8") as handle:
            vocabulary = json.load(handle)
        arrays = {name: np.load(os.path.join(directory, f"{name}.npy"),
                                mmap_mode="r" if name in ("docs", "tf") else None)
                  for name in cls.ARRAYS}
        index = cls(vocabulary, arrays, record["k1"], record["b"])
        index.record = record
        return index

    # -- scoring ----------------------------------------------------------------------
    def query_terms(self, texts):
        """CSR [queries × terms] counts of the indexed terms in ``texts``."""
        return _vectorizer(self.vocabulary).transform(texts)

    def scores(self, terms, counts):
        """(rows, scores): the documents that contain a term of the query (ascending) and
        their scores; every other document scores 0."""
        docs, parts = [], []
        for term, count in zip(terms, counts):
            low, high = self.indptr[term], self.indptr[term + 1]
            rows = np.asarray(self.docs[low:high])
            tf = np.asarray(self.tf[low:high], np.float64)
            parts.append(count * (self.idf[term] * tf * (self.k1 + 1)
                                  / (tf + self.norm[rows])))
            docs.append(rows)
        if not docs:
            return np.zeros(0, np.int64), np.zeros(0)
        rows, where = np.unique(np.concatenate(docs), return_inverse=True)
        return rows.astype(np.int64), np.bincount(where, weights=np.concatenate(parts))

    def top_k(self, rows, scores, k):
        """(rows, scores) of the k best documents, best first, ties in corpus order
        (documents outside ``rows`` score 0 and follow in corpus order)."""
        k = min(int(k), len(self))
        if len(rows) > k:
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            candidates = np.flatnonzero(scores >= kth)
        else:
            candidates = np.arange(len(rows))
        best = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
        top, values = rows[best], scores[best]
        if len(top) < k:  # zeros: the first documents that share no term, corpus order
            span = np.arange(min(len(self), k + len(rows)))
            extra = span[~np.isin(span, rows)][:k - len(top)]
            top, values = np.concatenate([top, extra]), np.concatenate(
                [values, np.zeros(len(extra))])
        return top, values

    def matches(self, texts, block=None):
        """Yields (matched rows, their scores) per text (:meth:`scores`); texts are
        tokenized ``block`` (default ``BLOCK_QUERIES``) at a time."""
        block = block or BLOCK_QUERIES
        for start in range(0, len(texts), block):
            matrix = self.query_terms(texts[start:start + block])
            for row in range(matrix.shape[0]):
                span = slice(matrix.indptr[row], matrix.indptr[row + 1])
                yield self.scores(matrix.indices[span], matrix.data[span])

    def search(self, texts, k, block=None):
        """Yields (rows [k], scores [k], (matched rows, their scores)) per text."""
        for rows, scores in self.matches(texts, block):
            yield (*self.top_k(rows, scores, k), (rows, scores))


def score_of(matched, rows):
    """Scores of the corpus ``rows`` for a query whose matched (rows, scores) are given."""
    found, scores = matched
    rows = np.asarray(rows, np.int64)
    at = np.minimum(np.searchsorted(found, rows), max(len(found) - 1, 0))
    hit = (found[at] == rows) if len(found) else np.zeros(len(rows), bool)
    return np.where(hit, scores[at] if len(found) else 0.0, 0.0)


def bm25_index(collection, k1=0.9, b=0.4):
    """The :class:`BM25Index` of ``collection``'s corpus (or of a corpus given as is):
    built in memory, or for a stored corpus written once into the store and
    memory-mapped (rebuilt when the record does not match)."""
    corpus = getattr(collection, "corpus", collection)
    store = getattr(corpus, "store", None)
    if store is None:
        return BM25Index.build(corpus, k1, b)
    directory = os.path.join(store, f"bm25-k1_{float(k1):g}-b_{float(b):g}")
    try:
        index = BM25Index.open(directory)
        if index.record == BM25Index._record(corpus, k1, b):
            return index
    except (OSError, ValueError, KeyError):
        pass
    return BM25Index.build(corpus, k1, b, directory)


def bm25_scores(collection, k1=0.9, b=0.4):
    """BM25 scores of every query against every document: (query ids, document ids,
    float64 [Q, N]). Holds [Q, N]: for small collections and checks."""
    index = bm25_index(collection, k1, b)
    query_ids = list(collection.queries)
    scores = np.zeros((len(query_ids), len(index)))
    for row, (rows, values) in enumerate(index.matches([collection.queries[q]
                                                        for q in query_ids])):
        scores[row, rows] = values
    return query_ids, list(collection.corpus), scores


def bm25_ranked(collection, query_ids, k, k1=0.9, b=0.4):
    """Yields (query id, top rows [k], their scores, matched (rows, scores)) for
    ``query_ids``, one query at a time (see :meth:`BM25Index.search`)."""
    index = bm25_index(collection, k1, b)
    texts = [collection.queries[q] for q in query_ids]
    for query_id, result in zip(query_ids, index.search(texts, k)):
        yield (query_id, *result)


def bm25_run(collection, k=100, k1=0.9, b=0.4):
    """A BM25 baseline run {query id: {document id: score}}, top k per query; ties broken
    by corpus order."""
    from samtone_tf.data.common import CorpusRows

    rows = CorpusRows(collection.corpus)
    return {query_id: dict(zip(rows.ids_at(top), map(float, values)))
            for query_id, top, values, _ in bm25_ranked(collection, list(collection.queries),
                                                        k, k1, b)}


def bm25_hard_negatives(collection, count=1, depth=100, k1=0.9, b=0.4):
    """{query id: [doc id, ...]}: what :func:`samtone_tf.data.runs.mine_hard_negatives`
    gives on ``bm25_run(collection, depth)`` for the judged queries, one query's top
    ``depth`` held at a time (the training job's ``data.hard_negatives: bm25``)."""
    from samtone_tf.data.common import CorpusRows
    from samtone_tf.data.runs import mine_hard_negatives

    rows = CorpusRows(collection.corpus)
    judged = [q for q in collection.qrels if q in collection.queries]
    negatives = {q: [] for q in collection.qrels}
    for query_id, top, values, _ in bm25_ranked(collection, judged, depth, k1, b):
        run = {query_id: dict(zip(rows.ids_at(top), map(float, values)))}
        negatives.update(mine_hard_negatives(run, {query_id: collection.qrels[query_id]},
                                             count))
    return negatives
