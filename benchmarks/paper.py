"""The paper's comparison on real data: architectures × losses × seeds.

    python benchmarks/paper.py --output docs/results [--seeds 0 1 2]
        [--architectures sde ade ade-spl] [--losses standard samtone symmetric]

Each cell fine-tunes all-MiniLM-L6-v2 on SciFact train with identical hyperparameters
(samtone_tf/configs/default.yaml: batch 32, 1 epoch, Adam 2e-5, τ 0.05), evaluates on
SciFact test and, zero-shot, on reqa-squad and cranfield, and measures the linear-probe
separation of the towers (400 + 400). Writes one JSON per run (resumable: finished
runs are skipped), OUTPUT/baselines.json (BM25 and zero-shot all-MiniLM-L6-v2 on the
same three collections) and OUTPUT/table.md: mean ± std (over seeds, ddof 1) per
cell, the baseline rows, wall times, and the per-seed paired difference of each
SamToNe loss against the standard loss of the same architecture and seed.
"""

import argparse
import json
import os
import time

import numpy as np

# The step the recorded grid was trained with: every activation kept, no gradient cache
# (`samtone train` picks remat and the gradient cache on a machine without a GPU/TPU:
# the same update, slower). Pinned so that the recorded results are reproduced with the
# step and time they were recorded with; hard_negatives.py and towers_apart.py use it too.
PLAIN_STEP = {"training.remat": False, "training.gradient_cache_chunk_size": None}

LOSSES = {"standard": {"loss.same_tower": "none"},
          "samtone": {"loss.same_tower": "query"},
          "symmetric": {"loss.same_tower": "both", "loss.symmetric": True}}
SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def run_cell(architecture, loss, seed, output):
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.job import load_run_model, run_training

    run_dir = os.path.join(output, f"{architecture}-{loss}-seed{seed}")
    result_path = run_dir + ".json"
    if os.path.exists(result_path):
        with open(result_path) as handle:
            return json.load(handle)
    started = time.time()
    overrides = {"model.architecture": architecture, "training.seed": seed,
                 "evaluation.zero_shot": False, **PLAIN_STEP, **LOSSES[loss]}
    metrics = run_training(load_config(None, overrides), run_dir, verbose=0)
    model, _ = load_run_model(run_dir)
    result = {"architecture": architecture, "loss": loss, "seed": seed,
              "scifact": metrics["fine_tuned"]}
    summaries, separation = evaluate_and_probe(model, seed)
    result.update(summaries)
    result["probe_accuracy"] = separation["probe_accuracy"]
    result["wall_time_s"] = round(time.time() - started, 1)
    with open(result_path, "w") as handle:
        json.dump(result, handle, indent=1)
    return result


def evaluate_and_probe(model, seed, collections=("reqa-squad", "cranfield"), tsne=False):
    """Each shared collection's test summary (``evaluate_model``), and
    ``tower_separation`` of 400 SciFact test pairs sampled with ``seed`` (the linear
    probe; the t-SNE too with ``tsne``). Returns (summaries by name, separation)."""
    from samtone_tf.training.alignment import sample_pairs, tower_separation
    from samtone_tf.data.beir import load_beir
    from samtone_tf.retrieval.evaluation import evaluate_model

    loaded = {name: load_beir(os.path.join(SHARED, name), "test")
              for name in dict.fromkeys((*collections, "scifact"))}
    summaries = {name: evaluate_model(model, loaded[name])[0] for name in collections}
    pairs = sample_pairs(loaded["scifact"], 400, seed)
    separation = tower_separation(model.encode_queries([q for q, _ in pairs]),
                                  model.encode_documents([d for _, d in pairs]), seed, tsne=tsne)
    return summaries, separation


def baselines(output):
    """BM25 and zero-shot all-MiniLM-L6-v2 on the grid's three test collections
    (computed once, cached in OUTPUT/baselines.json)."""
    from samtone_tf.runs.config import load_config
    from samtone_tf.data.beir import load_beir
    from samtone_tf.retrieval.bm25 import bm25_run
    from samtone_tf.retrieval.evaluation import evaluate_model
    from samtone_tf.retrieval.metrics import evaluate_run
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.models import minilm

    path = os.path.join(output, "baselines.json")
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    lengths = load_config(None)["model"]  # the grid's query/document max lengths
    model = DualEncoder(minilm(), architecture="sde", query_max_length=lengths["query_max_length"],
                        document_max_length=lengths["document_max_length"])
    result = {"bm25": {}, "zero-shot MiniLM": {}}
    for name in ("scifact", "reqa-squad", "cranfield"):
        collection = load_beir(os.path.join(SHARED, name), "test")
        result["bm25"][name] = evaluate_run(collection.qrels, bm25_run(collection, k=100))[0]
        result["zero-shot MiniLM"][name] = evaluate_model(model, collection)[0]
    with open(path, "w") as handle:
        json.dump(result, handle, indent=1)
    return result


KEYS = (("scifact", "ndcg@10"), ("reqa-squad", "p@1"), ("reqa-squad", "mrr@10"),
        ("cranfield", "ndcg@10"))


def _mean_std(values, signed=False):
    values = np.asarray(values, dtype=np.float64)
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():{'+' if signed else ''}.4f} ± {std:.4f}"


def write_table(results, path, reference=None):
    header = " | ".join(f"{c} {m}" for c, m in KEYS)
    lines = [f"| architecture | loss | seeds | {header} | probe acc. | wall s / run |",
             "|---|---|---|" + "---|" * (len(KEYS) + 2)]
    for name, summaries in (reference or {}).items():
        values = " | ".join(f"{summaries[c][m]:.4f}" for c, m in KEYS)
        lines.append(f"| {name} | – | – | {values} | – | – |")
    cells = {}
    for r in results:
        cells.setdefault((r["architecture"], r["loss"]), []).append(r)
    for (architecture, loss), runs in cells.items():
        row = [architecture, loss, ", ".join(str(r["seed"]) for r in runs)]
        row += [_mean_std([r[c][m] for r in runs]) for c, m in KEYS]
        row.append(_mean_std([r["probe_accuracy"] for r in runs]))
        row.append(f"{np.mean([r['wall_time_s'] for r in runs]):.0f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", ("Paired differences against the standard loss (same architecture and seed; "
                   "mean ± std over seeds):"), "",
              f"| architecture | loss − standard | seeds | {header} | probe acc. |",
              "|---|---|---|" + "---|" * (len(KEYS) + 1)]
    lines += paired_rows(cells, lambda architecture, loss: (architecture, "standard"),
                         extras=("probe_accuracy",))
    save_table(lines, path)


def paired_rows(cells, against, extras=(), keys=None):
    """Markdown rows of per-seed paired differences (mean ± std over the shared seeds):
    for each cell {key: runs} whose reference cell ``against(*key)`` is another cell with
    runs of the same seeds, the key, the seeds, then run − reference for ``keys`` (default
    ``KEYS``) and for each top-level field in ``extras``."""
    keys = KEYS if keys is None else keys
    lines = []
    for key, runs in cells.items():
        reference = against(*key)
        base = {r["seed"]: r for r in cells.get(reference, [])}
        pairs = [(r, base[r["seed"]]) for r in runs if r["seed"] in base]
        if reference == key or not pairs:
            continue
        row = [*key, ", ".join(str(r["seed"]) for r, _ in pairs)]
        row += [_mean_std([r[c][m] - b[c][m] for r, b in pairs], True) for c, m in keys]
        row += [_mean_std([r[e] - b[e] for r, b in pairs], True) for e in extras]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def save_table(lines, path):
    """Writes the table's lines to ``path`` and prints them."""
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="docs/results")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--architectures", nargs="+", default=["sde", "ade", "ade-spl"])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--no-baselines", action="store_true",
                        help="leave out the BM25 and zero-shot MiniLM rows")
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    results = [run_cell(a, l, s, args.output) for a in args.architectures
               for l in args.losses for s in args.seeds]
    reference = None if args.no_baselines else baselines(args.output)
    write_table(results, os.path.join(args.output, "table.md"), reference)


if __name__ == "__main__":
    main()
