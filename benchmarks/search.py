"""Exact top-100 search speed: samtone_tf (chunked TF matmul + top_k) vs FAISS
IndexFlatIP, same data, same run.

    python benchmarks/search.py [--docs 100000] [--dim 384] [--queries 2000] [--k 100]

Prints queries/s for both, the ratio samtone_tf / FAISS, and whether the results agree.
"""

import argparse
import json
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()

    from samtone_tf.retrieval.search import exact_search

    rng = np.random.default_rng(0)
    documents = rng.standard_normal((args.docs, args.dim), dtype=np.float32)
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    timings = {}
    results = {}
    for backend in ("tf", "faiss"):
        exact_search(queries[:64], documents, k=args.k, backend=backend)  # warm-up
        start = time.perf_counter()
        results[backend] = exact_search(queries, documents, k=args.k, backend=backend)
        timings[backend] = time.perf_counter() - start
    agree = float(np.mean(results["tf"][1] == results["faiss"][1]))
    print(json.dumps({
        "docs": args.docs, "dim": args.dim, "queries": args.queries, "k": args.k,
        "samtone_tf_queries_per_s": args.queries / timings["tf"],
        "faiss_flat_ip_queries_per_s": args.queries / timings["faiss"],
        "ratio_samtone_over_faiss": timings["faiss"] / timings["tf"],
        "same_indices_fraction": agree,
    }, indent=1))


if __name__ == "__main__":
    main()
