"""IR metrics of a run by pytrec_eval (``pytrec-eval-terrier``).

:func:`evaluate_run`: nDCG@k, MRR@k, P@k, Recall@k, MAP@k (k in 1, 3, 5, 10, 100),
averaged over every judged query (a query with no retrieved document scores 0). MRR@k
is pytrec_eval's reciprocal rank over the run cut at k. ``ignore_identical_ids`` drops a
retrieved document whose id equals the query id (BEIR's default; right for
Quora/ArguAna, wrong for Cranfield, whose query and document ids share a number space by
accident). A metric whose cutoff is deeper than the search that made the run is left
out, never computed from a truncated ranking.

The summary keys are "ndcg@10", "mrr@10", "p@1", "recall@100", "map@100" and all the
other "metric@k" pairs.
"""

from __future__ import annotations

import numpy as np

from samtone_tf.errors import DataError

CUTOFFS = (1, 3, 5, 10, 100)


HEADLINE = ("ndcg@10", "mrr@10", "p@1", "recall@100", "map@100")


def cut_run(run, k):
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
        for query_id, values in rr.evaluate(_nonempty(cut_run(run, k))).items():
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


def markdown_table(rows, keys=HEADLINE):
    """rows: {name: summary} → a markdown table string."""
    lines = ["| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, summary in rows.items():  # a metric left out for a shallow search: "—"
        lines.append(f"| {name} | " + " | ".join(
            f"{summary[k]:.4f}" if k in summary else "—" for k in keys) + " |")
    return "\n".join(lines)
