"""The paper's comparison on real data: architectures × losses × seeds.

    python benchmarks/paper.py --output docs/results [--seeds 0 1 2]
        [--architectures sde ade ade-spl] [--losses standard samtone symmetric]

Each cell fine-tunes all-MiniLM-L6-v2 on SciFact train with identical hyperparameters
(samtone_tf/configs/default.yaml: batch 32, 1 epoch, Adam 2e-5, τ 0.05), evaluates on
SciFact test and, zero-shot, on reqa-squad and cranfield, and measures the linear-probe
separation of the towers (400 + 400). Writes one JSON per run (resumable: finished
runs are skipped) and OUTPUT/RESULTS.md with mean ± std per cell and wall times.
"""

import argparse
import json
import os
import time

import numpy as np

LOSSES = {"standard": {"loss.same_tower": "none"},
          "samtone": {"loss.same_tower": "query"},
          "symmetric": {"loss.same_tower": "both", "loss.symmetric": True}}
SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def run_cell(architecture, loss, seed, output):
    from samtone_tf.analysis import sample_pairs, tower_separation
    from samtone_tf.config import load_config
    from samtone_tf.data.beir import load_beir
    from samtone_tf.evaluation import evaluate_model
    from samtone_tf.train import load_run_model, run_training

    run_dir = os.path.join(output, f"{architecture}-{loss}-seed{seed}")
    result_path = run_dir + ".json"
    if os.path.exists(result_path):
        with open(result_path) as handle:
            return json.load(handle)
    started = time.time()
    overrides = {"model.architecture": architecture, "training.seed": seed,
                 "evaluation.zero_shot": False, **LOSSES[loss]}
    metrics = run_training(load_config(None, overrides), run_dir, verbose=0)
    model, _ = load_run_model(run_dir)
    result = {"architecture": architecture, "loss": loss, "seed": seed,
              "scifact": metrics["fine_tuned"]}
    for name in ("reqa-squad", "cranfield"):
        summary, _, _ = evaluate_model(model, load_beir(os.path.join(SHARED, name), "test"))
        result[name] = summary
    pairs = sample_pairs(load_beir(os.path.join(SHARED, "scifact"), "test"), 400, seed)
    separation = tower_separation(model.encode_queries([q for q, _ in pairs]),
                                  model.encode_documents([d for _, d in pairs]), seed, tsne=False)
    result["probe_accuracy"] = separation["probe_accuracy"]
    result["wall_time_s"] = round(time.time() - started, 1)
    with open(result_path, "w") as handle:
        json.dump(result, handle, indent=1)
    return result


def write_table(results, path):
    keys = (("scifact", "ndcg@10"), ("reqa-squad", "p@1"), ("reqa-squad", "mrr@10"),
            ("cranfield", "ndcg@10"))
    lines = ["| architecture | loss | seeds | " + " | ".join(f"{c} {m}" for c, m in keys)
             + " | probe acc. | wall s / run |", "|---|---|---|" + "---|" * (len(keys) + 2)]
    cells = {}
    for r in results:
        cells.setdefault((r["architecture"], r["loss"]), []).append(r)
    for (architecture, loss), runs in cells.items():
        row = [architecture, loss, str(len(runs))]
        for collection, metric in keys:
            values = np.array([r[collection][metric] for r in runs])
            row.append(f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0:.4f}")
        probe = np.array([r["probe_accuracy"] for r in runs])
        row.append(f"{probe.mean():.3f}")
        row.append(f"{np.mean([r['wall_time_s'] for r in runs]):.0f}")
        lines.append("| " + " | ".join(row) + " |")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="docs/results")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--architectures", nargs="+", default=["sde", "ade", "ade-spl"])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    results = [run_cell(a, l, s, args.output) for a in args.architectures
               for l in args.losses for s in args.seeds]
    write_table(results, os.path.join(args.output, "RESULTS.md"))


if __name__ == "__main__":
    main()
