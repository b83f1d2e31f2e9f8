"""Zero-shot all-MiniLM-L6-v2: samtone_tf vs sentence-transformers + pytrec_eval.

    python benchmarks/zero_shot.py [--collections scifact reqa-squad cranfield]
                                   [--data ../shared/data] [--output zero_shot.json]

Same settings on both sides: cosine, max length 256, documents as title + " " + text,
exact top-100, ignore_identical_ids off. The reference path uses
sentence-transformers' `encode`, NumPy top-k and pytrec_eval directly (no samtone_tf
code). Prints one markdown row per collection and side, and the largest difference.
"""

import argparse
import json
import os
import time

import numpy as np


def reference_metrics(st_model, collection, k=100):
    import pytrec_eval

    doc_ids = list(collection.corpus)
    docs = [(collection.corpus[d].title + " " + collection.corpus[d].text)
            if collection.corpus[d].title else collection.corpus[d].text for d in doc_ids]
    query_ids = list(collection.queries)
    d = st_model.encode(docs, batch_size=64, normalize_embeddings=True)
    q = st_model.encode([collection.queries[i] for i in query_ids], batch_size=64,
                        normalize_embeddings=True)
    run = {}
    for start in range(0, len(q), 512):
        scores = q[start:start + 512] @ d.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        for row, indices in enumerate(top):
            run[query_ids[start + row]] = {doc_ids[i]: float(scores[row, i]) for i in indices}
    measures = {"ndcg_cut.10", "recip_rank", "P.1", "recall.100", "map_cut.100"}
    cut10 = {qid: dict(sorted(docs.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10])
             for qid, docs in run.items()}
    full = pytrec_eval.RelevanceEvaluator(collection.qrels, measures).evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(collection.qrels, {"recip_rank"}).evaluate(cut10)
    n = len(collection.qrels)
    return {
        "ndcg@10": sum(v["ndcg_cut_10"] for v in full.values()) / n,
        "mrr@10": sum(v["recip_rank"] for v in rr.values()) / n,
        "p@1": sum(v["P_1"] for v in full.values()) / n,
        "recall@100": sum(v["recall_100"] for v in full.values()) / n,
        "map@100": sum(v["map_cut_100"] for v in full.values()) / n,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+",
                        default=["scifact", "reqa-squad", "cranfield"])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    parser.add_argument("--output")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from samtone_tf.data.beir import load_beir
    from samtone_tf.retrieval.evaluation import evaluate_model
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.models import minilm

    spec = minilm()
    ours_model = DualEncoder(spec, architecture="sde", query_max_length=256,
                             document_max_length=256)
    st_model = SentenceTransformer(spec.folder, device="cpu")
    st_model.max_seq_length = 256
    keys = ("ndcg@10", "mrr@10", "p@1", "recall@100", "map@100")
    out, worst = {}, 0.0
    print("| collection | side | " + " | ".join(keys) + " | seconds |")
    print("|---|---|" + "---|" * (len(keys) + 1))
    for name in args.collections:
        collection = load_beir(os.path.join(args.data, name), "test")
        start = time.perf_counter()
        ours, _, _ = evaluate_model(ours_model, collection, k=100)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = reference_metrics(st_model, collection)
        theirs_s = time.perf_counter() - start
        out[name] = {"samtone_tf": {k: ours[k] for k in keys}, "sentence_transformers": theirs,
                     "seconds": {"samtone_tf": ours_s, "sentence_transformers": theirs_s}}
        for side, values, seconds in (("samtone_tf", ours, ours_s),
                                      ("sentence-transformers", theirs, theirs_s)):
            print(f"| {name} | {side} | " + " | ".join(f"{values[k]:.4f}" for k in keys)
                  + f" | {seconds:.0f} |")
        worst = max(worst, max(abs(ours[k] - theirs[k]) for k in keys))
    print(f"largest |samtone_tf - reference| over all metrics: {worst:.5f}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(out, handle, indent=1)


if __name__ == "__main__":
    main()
