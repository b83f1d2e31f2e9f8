"""The retrieval artifact on real collections: its metrics vs ``samtone eval``, and
float32 / int8 / binary indexes side by side, in one run.

    python benchmarks/index_quality.py [--collections scifact cranfield reqa-squad]
                                       [--model minilm] [--dims D]

For each collection (folders under ../shared/data; scifact is also shipped): evaluates
the model as ``samtone eval`` does (``evaluate_model``), builds an index per
quantization with ``build_index`` (the corpus encoded once: a shared, verified shard
cache), reloads each with ``tf.saved_model.load``, searches every judged query with
k = 100 through the ``search`` signature and scores the run with the same pytrec_eval
code. Prints one JSON line per (collection, quantization) and a markdown table.
"""

import argparse
import json
import os
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=["scifact", "cranfield"])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--dims", type=int)
    parser.add_argument("--work", help="folder for the indexes and the shard caches "
                                       "(reused by a later run; default: a new temporary one)")
    parser.add_argument("--quantizations", nargs="+",
                        default=["none", "int8", "binary", "binary+int8"],
                        help="binary+int8: binary candidates re-scored with int8 codes")
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops of the artifact)

    from samtone_tf.cli.models import load_encoder
    from samtone_tf.data.loaders import load_collection
    from samtone_tf.retrieval.evaluation import evaluate_model
    from samtone_tf.retrieval.metrics import evaluate_run
    from samtone_tf.retrieval.index import build_index
    from samtone_tf.resources import scifact_path

    model = load_encoder(args.model)
    keys = ("ndcg@10", "mrr@10", "p@1", "recall@100")
    rows = []
    work = args.work or tempfile.mkdtemp(prefix="index-quality-")
    for name in args.collections:
        folder = os.path.join(SHARED, name)
        if name == "scifact" and not os.path.isdir(folder):
            folder = scifact_path()
        collection = load_collection(folder, "test")
        cache = os.path.join(work, name + "-shards")
        want, _, _ = evaluate_model(model, collection, k=100, cache_dir=cache, dims=args.dims)
        query_ids = list(collection.queries)
        texts = [collection.queries[q] for q in query_ids]
        for quantization in args.quantizations:
            path = os.path.join(work, f"{name}-{quantization}")
            if os.path.exists(path):  # ours, from an earlier run with this --work
                import shutil

                shutil.rmtree(path)
            start = time.perf_counter()
            info = build_index(model, collection, path, dims=args.dims,
                               quantization=quantization.split("+")[0], shard_dir=cache,
                               progress=False,
                               rescore_vectors="int8" if quantization.endswith("+int8")
                               else "sign")
            built = time.perf_counter() - start
            index = tf.saved_model.load(path)
            search = index.signatures["search"]
            run, start = {}, time.perf_counter()
            for at in range(0, len(texts), 256):
                found = search(texts=tf.constant(texts[at:at + 256]), k=tf.constant(100))
                for row, (ids, scores) in enumerate(zip(found["ids"].numpy(),
                                                        found["scores"].numpy())):
                    run[query_ids[at + row]] = dict(zip(ids.astype(str), scores.astype(float)))
            searched = time.perf_counter() - start
            summary, _ = evaluate_run(collection.qrels, run)
            size = sum(os.path.getsize(os.path.join(root, f))
                       for root, _, files in os.walk(os.path.join(path, "variables"))
                       for f in files)
            result = {"collection": name, "quantization": quantization, "dims": args.dims,
                      "documents": info["documents"], "vector_bytes": info["vector_bytes"],
                      "variables_bytes_on_disk": size,
                      **{k: round(summary[k], 4) for k in keys},
                      "max_abs_diff_vs_samtone_eval": float(max(abs(summary[k] - want[k])
                                                                for k in keys)),
                      "build_s": round(built, 1), "queries_per_s": round(len(texts) / searched, 1)}
            print(json.dumps(result), flush=True)
            rows.append(result)
    print("\n| collection | index | vector bytes | nDCG@10 | Δ nDCG@10 vs float32 | P@1 | "
          "max |Δ| vs samtone eval |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(r for r in rows if r["collection"] == row["collection"]
                    and r["quantization"] == "none")
        print(f"| {row['collection']} | {row['quantization']} | {row['vector_bytes']:,} | "
              f"{row['ndcg@10']:.4f} | {row['ndcg@10'] - base['ndcg@10']:+.4f} | "
              f"{row['p@1']:.4f} | {row['max_abs_diff_vs_samtone_eval']:.1e} |")


if __name__ == "__main__":
    main()
