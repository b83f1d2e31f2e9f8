"""How much ranking one bit per dimension keeps, and whether a rotation, centring or
scales win any of it back (issue #17's binary target: within 0.01 nDCG@10 of float32).

    python benchmarks/binary_variants.py [--collections scifact cranfield reqa-squad]
        [--model minilm] [--work FOLDER]

For each collection (folders under ../shared/data) the corpus and the judged queries
are encoded once (``encode_corpus`` with a verified cache in ``--work``: the same cache
``benchmarks/index_quality.py --work`` uses) and every document is scored by each
variant with NumPy, top-100 by score, metrics by ``evaluate_run`` (pytrec_eval-equivalent):

- ``float32``: q·x (what ``samtone eval`` ranks);
- ``sign``: q·sign(x), all documents (the shipped ``binary`` index re-scores its Hamming
  shortlist with exactly this score);
- ``centred+scales``: q·μ + (q ⊙ σ)·sign(x − μ), σ_j = mean |x_j − μ_j|;
- ``itq+scales``: the same after PCA and an ITQ rotation W (Gong & Lazebnik 2011; 50
  iterations, seed 0), plus one least-squares length per document
  (q·μ + α_i (qW ⊙ σ)·sign((x_i − μ)W));
- ``2-bit``: sign and one magnitude bit per dimension (above / below the dimension's
  median |x_j|; each level its mean |x_j|): 16× smaller instead of 32×.

Prints one JSON line per collection with each variant's nDCG@10 and its difference to
float32, then a markdown table.
"""

import argparse
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))


def itq(x, iterations=50, seed=0):
    """(mean, orthogonal W): PCA axes of the centred rows, then ITQ's alternation of
    B = sign(V R) and the orthogonal Procrustes step R = Ŝ Sᵀ for svd(Bᵀ V) = S Ω Ŝᵀ."""
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=0)
    _, _, axes = np.linalg.svd(x - mean, full_matrices=False)
    v = (x - mean) @ axes.T
    rotation = np.linalg.qr(rng.standard_normal((x.shape[1], x.shape[1])))[0]
    for _ in range(iterations):
        signs = np.where(v @ rotation >= 0, 1.0, -1.0)
        left, _, right = np.linalg.svd(signs.T @ v)
        rotation = (left @ right).T
    return mean, axes.T @ rotation


def variants(queries, documents):
    """{name: [queries, documents] scores} for the variants in the module docstring
    (computed one at a time: ReQA-SQuAD's matrices are 10k × 10k)."""
    q, x = queries.astype(np.float64), documents.astype(np.float64)
    yield "float32", q @ x.T
    yield "sign", q @ np.where(x > 0, 1.0, -1.0).T
    mean = x.mean(axis=0)
    centred = x - mean
    sigma = np.abs(centred).mean(axis=0)
    yield "centred+scales", (q @ mean)[:, None] + (q * sigma) @ np.where(centred > 0, 1.0, -1.0).T
    mean, w = itq(x)
    p = (x - mean) @ w
    signs = np.where(p >= 0, 1.0, -1.0)
    sigma = np.abs(p).mean(axis=0)
    alpha = (p * signs * sigma).sum(axis=1) / ((signs * sigma) ** 2).sum(axis=1)
    yield "itq+scales", (q @ mean)[:, None] + ((q @ w) * sigma) @ signs.T * alpha[None, :]
    magnitude = np.abs(x)
    high = magnitude > np.median(magnitude, axis=0)
    def level(mask):  # per dimension, the mean |x_j| of the rows in ``mask``
        return (magnitude * mask).sum(axis=0) / np.maximum(mask.sum(axis=0), 1)

    rebuilt = np.where(x > 0, 1.0, -1.0) * np.where(high, level(high), level(~high))
    yield "2-bit", q @ rebuilt.T


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=["scifact", "cranfield", "reqa-squad"])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--work", default=None, help="embedding cache folder (default: none)")
    args = parser.parse_args()

    from samtone_tf.cli.models import load_encoder
    from samtone_tf.data.beir import load_beir
    from samtone_tf.retrieval.corpus import encode_corpus, model_fingerprint
    from samtone_tf.retrieval.metrics import evaluate_run

    model = load_encoder(args.model)
    fingerprint = model_fingerprint(model)
    rows = []
    for name in args.collections:
        collection = load_beir(os.path.join(SHARED, name), "test")
        doc_ids, query_ids = list(collection.corpus), list(collection.qrels)
        cache = None if args.work is None else os.path.join(args.work, name + "-shards")
        documents = encode_corpus(model, [collection.corpus[d].full_text for d in doc_ids], 64,
                                  cache_dir=cache, fingerprint=fingerprint, progress=False)
        queries = encode_corpus(model, [collection.queries[q] for q in query_ids], 64,
                                cache_dir=cache, fingerprint=fingerprint, progress=False,
                                side="query")
        result = {"collection": name, "documents": len(doc_ids), "queries": len(query_ids)}
        for variant, scores in variants(queries, documents):
            top = np.argpartition(-scores, 100, axis=1)[:, :100]
            run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]}
                   for i, q in enumerate(query_ids)}
            result[variant] = round(evaluate_run(collection.qrels, run)[0]["ndcg@10"], 4)
        print(json.dumps(result), flush=True)
        rows.append(result)
    names = [k for k in rows[0] if k not in ("collection", "documents", "queries")]
    print("\n| collection | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for r in rows:
        cells = [f"{r['float32']:.4f}"] + [f"{r[n]:.4f} ({r[n] - r['float32']:+.4f})"
                                           for n in names[1:]]
        print(f"| {r['collection']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
