"""Per-replica batches of PerWorkerInput (distribute_datasets_from_function) vs the
whole global batches split by experimental_distribute_dataset, under MirroredStrategy
over N logical CPUs, for the in-memory and the streaming (stored corpus) pipelines;
and per-worker shares whose union is the global batch."""

import json
import sys
import tempfile


def _replica_rows(strategy, distributed, steps):
    """[step][replica] → {name: NumPy array} for the first ``steps`` elements."""
    import tensorflow as tf

    out = []
    for element in distributed:
        out.append([tf.nest.map_structure(lambda t: t.numpy(), local)
                    for local in strategy.experimental_local_results(element)])
        if len(out) == steps:
            break
    return out


def main(replicas):
    from samtone_tf.training.distribute import PerWorkerInput, get_strategy

    strategy = get_strategy(f"cpu:{replicas}")
    import numpy as np
    import tensorflow as tf

    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
    from samtone_tf.data.store_build import load_stored
    from samtone_tf.data.streaming import example_columns
    from samtone_tf.models import SmallTransformer
    from samtone_tf.resources import scifact_path
    from samtone_tf.retrieval.bm25 import bm25_hard_negatives

    tokenizer = SmallTransformer().make_tokenizer(48)
    batch = 4 * replicas
    plain = load_beir(scifact_path(), "train")
    stored = load_stored(scifact_path(), "train", store=tempfile.mkdtemp() + "/store")
    negatives = bm25_hard_negatives(stored, 2)
    sources = {"in memory": examples_from_qrels(plain),
               "stored, hard negatives": example_columns(stored, negatives, 2)}
    results = {}
    for name, examples in sources.items():
        def make(share=None, examples=examples):
            return training_dataset(examples, tokenizer, tokenizer, batch, seed=5,
                                    epochs=2, share=share)
        whole = make()
        want = _replica_rows(strategy, strategy.experimental_distribute_dataset(
            whole.skip(3).take(4)), 4)
        got = _replica_rows(strategy, PerWorkerInput(make, batch).distribute(strategy, 3, 4), 4)
        equal = all(tf.nest.flatten(tf.nest.map_structure(np.array_equal, w, g))
                    for ws, gs in zip(want, got) for w, g in zip(ws, gs))
        # the shares of two input pipelines (two workers) are the two halves' ids
        halves = [next(iter(make(share=(i, 2)).skip(3))) for i in range(2)]
        first = next(iter(whole.skip(3)))
        ids = [np.concatenate([h[key].numpy() for h in halves]).tolist() ==
               first[key].numpy().tolist()
               for key in ("query_ids", "document_ids")]
        results[name] = {"steps": len(got), "replicas": len(got[0]), "equal": bool(equal),
                         "shares_are_halves": all(ids),
                         "share_rows": int(halves[0]["query_ids"].shape[0])}
    return results


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(int(sys.argv[1]))))
