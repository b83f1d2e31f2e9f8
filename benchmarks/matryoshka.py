"""Truncated embeddings: nDCG@10 at several dimensions for trained runs, one table.

    samtone train --set loss.matryoshka_dims=[384,256,128,64] --output runs/matryoshka
    python benchmarks/matryoshka.py runs/default runs/matryoshka \
        [--dims 384 256 128 64] [--collections scifact cranfield]

Each run's exported SavedModel encodes each collection once (a verified embedding cache);
every truncation keeps the first D dimensions of queries and documents, re-normalised
(``samtone eval --dims D``).
"""

import argparse
import json
import os
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--dims", nargs="+", type=int, default=[384, 256, 128, 64])
    parser.add_argument("--collections", nargs="+", default=["scifact", "cranfield"])
    args = parser.parse_args()

    from samtone_tf.data.loaders import load_collection
    from samtone_tf.retrieval.evaluation import evaluate_model
    from samtone_tf.export.saved_model import SavedModelEncoder
    from samtone_tf.resources import scifact_path

    cache = tempfile.mkdtemp(prefix="matryoshka-")
    table = {}
    for run in args.runs:
        encoder = SavedModelEncoder(os.path.join(run, "savedmodel"))
        for name in args.collections:
            folder = os.path.join(SHARED, name)
            if name == "scifact" and not os.path.isdir(folder):
                folder = scifact_path()
            collection = load_collection(folder, "test")
            for dims in args.dims:
                summary, _, _ = evaluate_model(encoder, collection, cache_dir=cache, dims=dims)
                table[(run, name, dims)] = summary["ndcg@10"]
                print(json.dumps({"run": run, "collection": name, "dims": dims,
                                  "ndcg@10": round(summary["ndcg@10"], 4)}), flush=True)
    print("\n| run | collection | " + " | ".join(f"nDCG@10 at {d}" for d in args.dims) + " |")
    print("|---|---|" + "---|" * len(args.dims))
    for run in args.runs:
        for name in args.collections:
            print(f"| {run} | {name} | " + " | ".join(
                f"{table[(run, name, d)]:.4f}" for d in args.dims) + " |")


if __name__ == "__main__":
    main()
