"""TREC run files and hard-negative mining; they serve every collection format.

A run is ``{query id: {document id: score}}``; a TREC run file has one line per
retrieved document: ``query_id Q0 doc_id rank score tag``.

Example:

>>> from samtone_tf.data.runs import mine_hard_negatives
>>> run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
>>> mine_hard_negatives(run, {"q1": {"d1": 1}}, count=1)
{'q1': ['d2']}
"""

from __future__ import annotations

from samtone_tf.data.common import DataError, rows
from samtone_tf.files import write_text_atomic


def read_trec_run(path):
    """A TREC run file (``qid Q0 docid rank score tag``) → {qid: {docid: score}}."""
    run = {}
    for number, fields in rows(path, 6, separator=None):
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


def write_trec_run(run, path, tag="samtone_tf"):
    """Writes a TREC run file ``qid Q0 docid rank score tag`` atomically (see
    :mod:`samtone_tf.files`: a symlink at ``path`` is replaced, never written through)."""
    lines = []
    for query_id, docs in run.items():
        ranked = sorted(docs.items(), key=lambda item: (-item[1], item[0]))
        for rank, (doc_id, score) in enumerate(ranked, start=1):
            lines.append(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    write_text_atomic(path, "".join(lines))
