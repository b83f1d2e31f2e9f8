"""Index scale: a large synthetic corpus through ``build_index`` (docs/s, peak memory),
and search speed at 100k × 384 through the artifact, samtone_tf's Python exact search
and FAISS IndexFlatIP, one run.

    python benchmarks/index_scale.py [--docs 1000000] [--search-docs 100000] [--queries 2000]

Part 1 (timing only; the texts are synthetic): ``--docs`` texts of 8–24 pseudo-words
indexed with a from-scratch 384-d one-layer tower (hashing tokenizer, 32 tokens) in
100k-document shards; prints docs/s and the process' peak resident memory
(``ru_maxrss``). Part 2: ``--search-docs`` random unit vectors × 384 stored in a
retrieval SavedModel (float32, exact), reloaded; ``--queries`` queries at k = 100: the
artifact's ``search`` (query encoding included, it is one tiny layer), the vectors'
``samtone_tf.retrieval.search.exact_search`` (backend "tf" and "auto") and FAISS on the same
query vectors.
"""

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np


def synthetic(count, seed=0):
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "ren", "to", "sa", "vu", "ne", "di", "po", "qua", "ish"]
    vocabulary = ["".join(rng.choice(syllables, size=rng.integers(2, 4)))
                  for _ in range(5000)]
    lengths = rng.integers(8, 25, size=count)
    words = rng.integers(0, len(vocabulary), size=int(lengths.sum()))
    texts, at = [], 0
    for length in lengths:
        texts.append(" ".join(vocabulary[w] for w in words[at:at + length]))
        at += length
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--search-docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from samtone_tf import DualEncoder, SmallTransformer
    from samtone_tf.data.common import Collection, Document
    from samtone_tf.retrieval.search import exact_search
    from samtone_tf.retrieval.index import _encoder_module, _Index

    keras.utils.set_random_seed(0)
    model = DualEncoder(SmallTransformer(hidden_dim=384, num_layers=1, num_heads=6,
                                         intermediate_dim=384, max_length=32))
    work = tempfile.mkdtemp(prefix="index-scale-")
    result = {"cpus": os.cpu_count()}
    if not args.skip_build:
        from samtone_tf.retrieval.index import build_index

        texts = synthetic(args.docs)
        collection = Collection(corpus={str(i): Document("", t) for i, t in enumerate(texts)},
                                queries={}, qrels={}, split="synthetic", path="synthetic")
        del texts
        start = time.perf_counter()
        info = build_index(model, collection, os.path.join(work, "big"), shard_size=100_000,
                           batch_size=256, progress=False)
        seconds = time.perf_counter() - start
        result.update(index_docs=info["documents"], index_seconds=round(seconds, 1),
                      index_docs_per_s=round(info["documents"] / seconds, 1),
                      index_peak_rss_gb=round(
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2))
        print(json.dumps(result), flush=True)
        del collection

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((args.search_docs, 384), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    encoder, _ = _encoder_module(model)
    index = _Index(encoder, [{"vectors": vectors}], [str(i) for i in range(len(vectors))], 384,
                   None, 100, 10)
    path = os.path.join(work, "search")
    tf.saved_model.save(index, path, signatures={"search": index.search})
    search = tf.saved_model.load(path).signatures["search"]
    texts = tf.constant(synthetic(args.queries, seed=2))
    queries = model.encode_queries(synthetic(args.queries, seed=2))
    search(texts=texts[:8], k=tf.constant(100))  # warm-up
    timings = {}
    start = time.perf_counter()
    for at in range(0, args.queries, 500):
        search(texts=texts[at:at + 500], k=tf.constant(100))
    timings["artifact_search"] = time.perf_counter() - start
    for backend in ("tf", "faiss"):
        exact_search(queries[:8], vectors, k=100, backend=backend)
        start = time.perf_counter()
        exact_search(queries, vectors, k=100, backend=backend)
        timings[f"exact_search_{backend}"] = time.perf_counter() - start
    qps = {name: round(args.queries / seconds, 1) for name, seconds in timings.items()}
    result.update(search_docs=args.search_docs, queries=args.queries, queries_per_s=qps,
                  artifact_over_faiss=round(qps["artifact_search"] / qps["exact_search_faiss"], 3),
                  python_tf_over_faiss=round(qps["exact_search_tf"] / qps["exact_search_faiss"], 3))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
