"""MS MARCO passage ranking files (TREC runs and mining: :mod:`samtone_tf.data.runs`).

Files (Bajaj et al. 2016; https://microsoft.github.io/msmarco/), each may be ``.gz``:

* ``collection.tsv``: ``pid<TAB>passage``;
* ``queries.<split>.tsv``: ``qid<TAB>query`` (split: train, dev, eval, ...);
* ``qrels.<split>.tsv``: TREC qrels ``qid 0 pid relevance`` (tab or space separated);
* ``qidpidtriples.train.full.tsv``: ``qid<TAB>positive pid<TAB>negative pid``;
* ``triples.train.small.tsv``: ``query<TAB>positive passage<TAB>negative passage``.

Every malformed line raises :class:`~samtone_tf.data.beir.DataError` naming file and line.
"""

from __future__ import annotations

from samtone_tf.data.common import (Collection, DataError, Document, add_text,
                                    check_duplicate_judgement, find_file, present_in,
                                    require_judgements, rows)


def read_id_text(path, kind):
    out = {}
    for number, (the_id, text) in rows(path, 2):
        add_text(out, path, number, kind, the_id, text)
    return out


def read_trec_qrels(path):
    """Yields (line number, qid, pid, relevance) from ``qid 0 pid rel`` lines."""
    for number, fields in rows(path, 4, separator=None):
        try:
            yield number, fields[0], fields[2], int(fields[3])
        except ValueError:
            raise DataError(f"{path}:{number}: relevance {fields[3]!r} is not an integer") from None


def load_msmarco(folder, split="dev", on_missing="error", corpus=None):
    """MS MARCO passage ranking as a :class:`Collection` (queries judged in ``split``);
    ``corpus``: the passages already read (a stored corpus) instead of collection.tsv."""
    if corpus is None:
        collection_path = find_file(folder, "collection.tsv")
        corpus = {pid: Document("", text) for pid, text in
                  read_id_text(collection_path, "passage").items()}
        if not corpus:
            raise DataError(f"{collection_path}: the collection holds no passage")
    all_queries = read_id_text(find_file(folder, f"queries.{split}.tsv"), "query")
    qrels_path = find_file(folder, f"qrels.{split}.tsv")
    qrels, skipped, seen = {}, 0, {}
    lines = list(read_trec_qrels(qrels_path))
    known = present_in(corpus, [pid for _, _, pid, _ in lines])
    for (number, qid, pid, relevance), pid_known in zip(lines, known):
        check_duplicate_judgement(seen, qrels_path, number, qid, pid)
        missing = ("query", qid) if qid not in all_queries else (
            ("passage", pid) if not pid_known else None)
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
    return Collection(corpus, {q: all_queries[q] for q in qrels}, qrels, split, folder)


def read_id_triples(path):
    """Yields (qid, positive pid, negative pid) from ``qidpidtriples``."""
    for _, fields in rows(path, 3):
        yield tuple(fields)


def read_text_triples(path):
    """Yields (query, positive passage, negative passage) from ``triples.train.*.tsv``."""
    for number, fields in rows(path, 3):
        if not all(f.strip() for f in fields):
            raise DataError(f"{path}:{number}: empty text in a triple")
        yield tuple(fields)
