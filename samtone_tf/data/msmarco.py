"""MS MARCO passage ranking files, and TREC run files / hard-negative mining.

Files (Bajaj et al. 2016; https://microsoft.github.io/msmarco/), each may be ``.gz``:

* ``collection.tsv``: ``pid<TAB>passage``;
* ``queries.<split>.tsv``: ``qid<TAB>query`` (split: train, dev, eval, ...);
* ``qrels.<split>.tsv``: TREC qrels ``qid 0 pid relevance`` (tab or space separated);
* ``qidpidtriples.train.full.tsv``: ``qid<TAB>positive pid<TAB>negative pid``;
* ``triples.train.small.tsv``: ``query<TAB>positive passage<TAB>negative passage``.

Every malformed line raises :class:`~samtone_tf.data.beir.DataError` naming file and line.
"""

from __future__ import annotations

import os

from samtone_tf.data.beir import (BeirCollection, DataError, Document, add_text,
                                  check_duplicate_judgement, open_lines, require_judgements)


def _rows(path, columns, separator="\t"):
    for number, line in open_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split(separator) if separator else line.split()
        if len(fields) != columns:
            raise DataError(f"{path}:{number}: expected {columns} "
                            f"{'tab-separated' if separator else 'whitespace-separated'} fields, "
                            f"got {len(fields)}")
        yield number, fields


def _find(folder, name):
    for candidate in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"{os.path.join(folder, name)}(.gz) not found")


def read_id_text(path, kind):
    out = {}
    for number, (the_id, text) in _rows(path, 2):
        add_text(out, path, number, kind, the_id, text)
    return out


def read_trec_qrels(path):
    """Yields (line number, qid, pid, relevance) from ``qid 0 pid rel`` lines."""
    for number, fields in _rows(path, 4, separator=None):
        try:
            yield number, fields[0], fields[2], int(fields[3])
        except ValueError:
            raise DataError(f"{path}:{number}: relevance {fields[3]!r} is not an integer") from None


def load_msmarco(folder, split="dev", on_missing="error"):
    """MS MARCO passage ranking as a :class:`BeirCollection` (queries judged in ``split``)."""
    collection_path = _find(folder, "collection.tsv")
    corpus = {pid: Document("", text) for pid, text in
              read_id_text(collection_path, "passage").items()}
    if not corpus:
        raise DataError(f"{collection_path}: the collection holds no passage")
    all_queries = read_id_text(_find(folder, f"queries.{split}.tsv"), "query")
    qrels_path = _find(folder, f"qrels.{split}.tsv")
    qrels, skipped, seen = {}, 0, {}
    for number, qid, pid, relevance in read_trec_qrels(qrels_path):
        check_duplicate_judgement(seen, qrels_path, number, qid, pid)
        missing = ("query", qid) if qid not in all_queries else (
            ("passage", pid) if pid not in corpus else None)
        if missing:
            if on_missing == "error":
                raise DataError(f"{qrels_path}:{number}: {missing[0]} id {missing[1]!r} is unknown")
            skipped += 1
            continue
        qrels.setdefault(qid, {})[pid] = relevance
    if skipped:
        import warnings

        warnings.warn(f"{qrels_path}: skipped {skipped} qrels line(s) with unknown ids",
                      stacklevel=2)
    require_judgements(qrels, qrels_path, split)
    return BeirCollection(corpus, {q: all_queries[q] for q in qrels}, qrels, split, folder)


def read_id_triples(path):
    """Yields (qid, positive pid, negative pid) from ``qidpidtriples``."""
    for _, fields in _rows(path, 3):
        yield tuple(fields)


def read_text_triples(path):
    """Yields (query, positive passage, negative passage) from ``triples.train.*.tsv``."""
    for number, fields in _rows(path, 3):
        if not all(f.strip() for f in fields):
            raise DataError(f"{path}:{number}: empty text in a triple")
        yield tuple(fields)


def read_trec_run(path):
    """A TREC run file (``qid Q0 docid rank score tag``) → {qid: {docid: score}}."""
    run = {}
    for number, fields in _rows(path, 6, separator=None):
        try:
            score = float(fields[4])
        except ValueError:
            raise DataError(f"{path}:{number}: score {fields[4]!r} is not a number") from None
        run.setdefault(fields[0], {})[fields[2]] = score
    return run


def mine_hard_negatives(run, qrels, count=1, skip_top=0):
    """{qid: [docid, ...]}: for each judged query, the ``count`` best-scored documents
    of ``run`` that are not judged relevant (relevance > 0) for it, after skipping the
    ``skip_top`` best non-relevant ones (a common guard against unjudged positives).
    Ties: higher score first, then document id."""
    negatives = {}
    for qid, relevant in qrels.items():
        positives = {d for d, r in relevant.items() if r > 0}
        ranked = sorted(run.get(qid, {}).items(), key=lambda item: (-item[1], item[0]))
        candidates = [d for d, _ in ranked if d not in positives]
        negatives[qid] = candidates[skip_top:skip_top + count]
    return negatives
