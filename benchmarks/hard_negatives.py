"""Issue #18's experiment: which hard negatives help MiniLM on SciFact, with which loss.

    python benchmarks/hard_negatives.py --output docs/results/hard_negatives
        [--seeds 0 1] [--mixed-precision mixed_bfloat16] [--num-negatives 1]
        [--sources in-batch bm25 dense dense-margin] [--losses standard samtone]

Negative sources, each a TREC run over the SciFact train queries that
``data.hard_negatives`` reads (training takes each query's best-scored
``--num-negatives`` candidates of it; positives are never candidates):

- ``in-batch``: none (the default job).
- ``bm25``: BM25's ranking, the best non-positive documents (rank window 0–100).
- ``dense``: the zero-shot all-MiniLM-L6-v2 (``samtone mine --model minilm``), rank
  window 10–100 (the top 10 skipped, a common guard against unjudged positives).
- ``dense-margin``: the same window, and only candidates scoring at least 0.05 below the
  query's lowest-scoring positive (``--absolute-margin 0.05``).

Both dense runs come from one encoding of the train queries and the corpus
(``samtone_tf.retrieval.mining.mine_from_embeddings``); the filter counts are printed and kept in
OUTPUT/mining.json. Every cell fine-tunes all-MiniLM-L6-v2 SDE with the default job's
budget and hyperparameters (samtone_tf/configs/default.yaml: batch 32, one epoch over the
train pairs, Adam 2e-5, τ 0.05) and ``training.mixed_precision`` = ``--mixed-precision``
(the same in every cell; ``none`` for float32), evaluates on SciFact test and, zero-shot,
on reqa-squad and cranfield, and writes one JSON per run (resumable: finished runs are
skipped) and OUTPUT/table.md: mean ± std over seeds, the per-seed paired difference of
each source against in-batch (same loss and seed), and of SamToNe against standard (same
source and seed).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from paper import KEYS, PLAIN_STEP, _mean_std, evaluate_and_probe, paired_rows, save_table  # noqa: E402

LOSSES = {"standard": {"loss.same_tower": "none"},
          "samtone": {"loss.same_tower": "query"}}
SOURCES = ("in-batch", "bm25", "dense", "dense-margin")
WINDOW = (10, 100)
MARGIN = 0.05
MINED = 8  # candidates written per query (training takes the first --num-negatives)


def mine(output):
    """Writes OUTPUT/dense.trec and OUTPUT/dense-margin.trec from one zero-shot MiniLM
    encoding of SciFact train; returns {source: report} (cached in OUTPUT/mining.json)."""
    path = os.path.join(output, "mining.json")
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    from samtone_tf.cli.models import load_encoder
    from samtone_tf.data.loaders import load_collection
    from samtone_tf.data.runs import write_trec_run
    from samtone_tf.retrieval.mining import as_run, encode_for_mining, mine_from_embeddings
    from samtone_tf.resources import scifact_path

    started = time.time()
    collection = load_collection(scifact_path(), "train", "beir")
    queries, documents, query_ids, document_ids = encode_for_mining(load_encoder("minilm"),
                                                                    collection)
    reports = {}
    for source, margin in (("dense", None), ("dense-margin", MARGIN)):
        negatives, report = mine_from_embeddings(queries, documents, query_ids, document_ids,
                                                 collection.qrels, num=MINED, window=WINDOW,
                                                 absolute_margin=margin)
        write_trec_run(as_run(negatives), os.path.join(output, source + ".trec"),
                       tag="samtone-mine")
        reports[source] = report
        print(f"{source}: kept {report['kept']} for {report['queries']} queries; removed "
              f"{report['removed']}; {report['queries_with_fewer_than_num']} got fewer than "
              f"{MINED}", flush=True)
    reports["encoding_s"] = round(time.time() - started, 1)
    with open(path, "w") as handle:
        json.dump(reports, handle, indent=1)
    return reports


def training_pairs(overrides):
    """How many (query, positive) pairs the job trains on (``training_examples``:
    queries with fewer mined negatives than asked are skipped)."""
    import warnings

    from samtone_tf.runs.config import load_config
    from samtone_tf.data.loaders import load_collection
    from samtone_tf.resources import scifact_path
    from samtone_tf.runs.job import training_examples

    config = load_config(None, overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(training_examples(config, load_collection(scifact_path(), "train", "beir")))


def run_cell(source, loss, seed, args):
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.job import load_run_model, run_training

    name = f"{source}-{loss}-seed{seed}"
    result_path = os.path.join(args.output, name + ".json")
    if os.path.exists(result_path):
        with open(result_path) as handle:
            return json.load(handle)
    started = time.time()
    overrides = {"training.seed": seed, "evaluation.zero_shot": False,
                 "training.mixed_precision": args.mixed_precision, **PLAIN_STEP,
                 **LOSSES[loss]}
    if source != "in-batch":
        overrides["data.hard_negatives"] = ("bm25" if source == "bm25" else
                                            os.path.join(args.output, source + ".trec"))
        overrides["data.num_hard_negatives"] = args.num_negatives
    run_dir = os.path.join(args.runs, name)
    metrics = run_training(load_config(None, overrides), run_dir, verbose=0)
    model, _ = load_run_model(run_dir)
    summaries, separation = evaluate_and_probe(model, seed)
    result = {"source": source, "loss": loss, "seed": seed,
              "mixed_precision": args.mixed_precision, "num_negatives": args.num_negatives,
              "scifact": metrics["fine_tuned"], **summaries,
              "probe_accuracy": separation["probe_accuracy"],
              "training_pairs": training_pairs(overrides),
              "wall_time_s": round(time.time() - started, 1)}
    with open(result_path, "w") as handle:
        json.dump(result, handle, indent=1)
    print(name, {c: round(result[c][m], 4) for c, m in KEYS}, result["wall_time_s"], "s",
          flush=True)
    return result


def write_table(results, path):
    header = " | ".join(f"{c} {m}" for c, m in KEYS)
    cells = {}
    for r in results:
        cells.setdefault((r["source"], r["loss"]), []).append(r)
    lines = [f"| negatives | loss | seeds | {header} | training pairs | wall s / run |",
             "|---|---|---|" + "---|" * (len(KEYS) + 2)]
    for (source, loss), runs in cells.items():
        row = [source, loss, ", ".join(str(r["seed"]) for r in runs)]
        row += [_mean_std([r[c][m] for r in runs]) for c, m in KEYS]
        row.append(str(runs[0]["training_pairs"]))
        row.append(f"{sum(r['wall_time_s'] for r in runs) / len(runs):.0f}")
        lines.append("| " + " | ".join(row) + " |")

    def paired(title, against):
        return ["", title, "", f"| negatives | loss | seeds | {header} |",
                "|---|---|---|" + "---|" * len(KEYS)] + paired_rows(cells, against)

    lines += paired("Each source minus in-batch negatives (same loss and seed):",
                    lambda source, loss: ("in-batch", loss))
    lines += paired("SamToNe minus standard (same negatives and seed):",
                    lambda source, loss: (source, "standard"))
    save_table(lines, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="docs/results/hard_negatives")
    parser.add_argument("--runs", default=None,
                        help="where the run folders go (default: OUTPUT/runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--num-negatives", type=int, default=1)
    parser.add_argument("--mixed-precision", default="mixed_bfloat16",
                        choices=["none", "mixed_bfloat16", "mixed_float16"])
    args = parser.parse_args()
    if args.mixed_precision == "none":
        args.mixed_precision = None
    args.runs = args.runs or os.path.join(args.output, "runs")
    os.makedirs(args.output, exist_ok=True)
    if {"dense", "dense-margin"} & set(args.sources):
        mine(args.output)
    results = [run_cell(source, loss, seed, args) for seed in args.seeds
               for source in args.sources for loss in args.losses]
    write_table(results, os.path.join(args.output, "table.md"))


if __name__ == "__main__":
    main()
