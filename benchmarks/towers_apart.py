"""Towers that start apart: ADE / ADE-SPL from scratch, standard vs SamToNe losses.

    python benchmarks/towers_apart.py --output docs/results/towers_apart [--seeds 0 1 2]
        [--architectures ade ade-spl] [--losses standard samtone symmetric]
        [--epochs 3] [--every 25] [--runs DIR] [--data DIR]

The paper's mechanism (Moiseev et al. 2023, §5): asymmetric towers embed queries and
documents in two separate clouds; same-tower negatives pull them into one space. Our
MiniLM grid cannot show it: its two ADE towers start as copies of one contrastively
trained checkpoint, so the clouds are mixed before the first step. Here both towers are
the small from-scratch transformer (``model.tower: small``: 2 layers, width 128, hashing
word-piece-free tokenizer), each tower with its own random initialisation, so the clouds
start apart.

Training signal, built from data we ship, nothing from a test query: the SciFact
training claims with their judged abstracts, plus every SciFact corpus title paired with
its own abstract (the documents are written without their titles, so a title is not
copied into its positive). Evaluation: SciFact test claims (in-domain queries never
trained on) against the standard corpus with titles, and zero-shot ReQA-SQuAD and
Cranfield. ``analysis.every_steps`` records the tower-alignment curves
(:class:`samtone_tf.training.callbacks.TowerAlignment` on 200 held-out SciFact test pairs); at the
end, the linear probe and t-SNE on 400 pairs.

Writes OUTPUT/<arch>-<loss>-seed<N>.json per run (resumable: finished runs are
skipped), OUTPUT/table.md (mean ± std over seeds, paired differences against the
standard loss), OUTPUT/alignment.png (probe accuracy and centroid cosine against the
step, mean over seeds) and OUTPUT/tsne.png (seed 0, one panel per cell).
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from paper import LOSSES, PLAIN_STEP, SHARED, _mean_std, evaluate_and_probe  # noqa: E402

CURVES = ("tower_probe_accuracy", "tower_centroid_cosine", "mean_query_query",
          "mean_query_document")


def write_training_collection(folder):
    """SciFact train claims + corpus titles → title-less abstracts, in the BEIR layout."""
    if os.path.exists(os.path.join(folder, "qrels", "test.tsv")):
        return folder
    source = os.path.join(SHARED, "scifact")
    os.makedirs(os.path.join(folder, "qrels"), exist_ok=True)
    titles = {}
    with open(os.path.join(source, "corpus.jsonl"), encoding="utf-8") as inp, \
            open(os.path.join(folder, "corpus.jsonl"), "w", encoding="utf-8") as out:
        for line in inp:
            doc = json.loads(line)
            if doc.get("title", "").strip():
                titles[doc["_id"]] = doc["title"].strip()
            out.write(json.dumps({"_id": doc["_id"], "title": "", "text": doc["text"]}) + "\n")
    with open(os.path.join(source, "queries.jsonl"), encoding="utf-8") as inp, \
            open(os.path.join(folder, "queries.jsonl"), "w", encoding="utf-8") as out:
        for line in inp:
            out.write(line if line.endswith("\n") else line + "\n")
        for doc_id, title in titles.items():
            out.write(json.dumps({"_id": f"title-{doc_id}", "text": title}) + "\n")
    shutil.copy(os.path.join(source, "qrels", "test.tsv"), os.path.join(folder, "qrels"))
    with open(os.path.join(source, "qrels", "train.tsv"), encoding="utf-8") as inp, \
            open(os.path.join(folder, "qrels", "train.tsv"), "w", encoding="utf-8") as out:
        out.write(inp.read().rstrip("\n") + "\n")
        for doc_id in titles:
            out.write(f"title-{doc_id}\t{doc_id}\t1\n")
    return folder


def run_cell(architecture, loss, seed, output, data, epochs, every, runs):
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.job import load_run_model, run_training

    name = f"{architecture}-{loss}-seed{seed}"
    result_path = os.path.join(output, name + ".json")
    if os.path.exists(result_path):
        with open(result_path) as handle:
            return json.load(handle)
    run_dir = os.path.join(runs, name)
    started = time.time()
    overrides = {"data.path": data, "model.tower": "small", "model.architecture": architecture,
                 "model.query_max_length": 64, "model.document_max_length": 256,
                 "training.seed": seed, "training.epochs": epochs,
                 "training.global_batch_size": 64, "training.learning_rate": 1e-3,
                 "training.checkpoint_every": 10_000, "evaluation.zero_shot": False,
                 "analysis.every_steps": every, "analysis.pairs": 200, **PLAIN_STEP,
                 **LOSSES[loss]}
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.exists(metrics_path):  # trained before an interruption: evaluate only
        with open(metrics_path) as handle:
            metrics = json.load(handle)
    else:
        metrics = run_training(load_config(None, overrides), run_dir, verbose=0)
    model, _ = load_run_model(run_dir)
    with open(os.path.join(run_dir, "history.json")) as handle:
        history = json.load(handle)
    result = {"architecture": architecture, "loss": loss, "seed": seed,
              "curves": {"step": history["alignment_step"],
                         **{key: history[key] for key in CURVES}},
              "scifact (title-less corpus)": metrics["fine_tuned"]}
    summaries, separation = evaluate_and_probe(
        model, seed, ("scifact", "reqa-squad", "cranfield"), tsne=seed == 0)
    result.update(summaries)
    result["probe_accuracy"] = separation["probe_accuracy"]
    if separation.get("tsne") is not None:
        result["tsne"] = np.asarray(separation["tsne"]).round(3).tolist()
    result["wall_time_s"] = round(time.time() - started, 1)
    with open(result_path, "w") as handle:
        json.dump(result, handle)
    print(f"{name}: scifact nDCG@10 {result['scifact']['ndcg@10']:.4f}, probe "
          f"{result['probe_accuracy']:.3f} (start {result['curves']['tower_probe_accuracy'][0]:.3f})"
          f", {result['wall_time_s']:.0f} s", flush=True)
    return result


COLUMNS = (("scifact", "ndcg@10"), ("scifact", "p@1"), ("cranfield", "ndcg@10"),
           ("reqa-squad", "p@1"))


def write_table(results, path):
    """Mean ± std over seeds per (architecture, loss), then paired differences against
    the standard loss of the same architecture and seed."""
    def row_values(runs, base=None):
        def get(r, c, m):
            return r[c][m] - (base[r["seed"]][c][m] if base else 0.0)

        values = [_mean_std([get(r, c, m) for r in runs], base is not None) for c, m in COLUMNS]
        for key, at in (("tower_probe_accuracy", 0), ("tower_probe_accuracy", -1),
                        ("tower_centroid_cosine", 0), ("tower_centroid_cosine", -1)):
            values.append(_mean_std([r["curves"][key][at] - (
                base[r["seed"]]["curves"][key][at] if base else 0.0) for r in runs],
                base is not None))
        return values

    header = " | ".join(f"{c} {m}" for c, m in COLUMNS)
    curves = "probe acc. at step 0 | probe acc. at the end | centroid cos. at 0 | at the end"
    lines = [f"| architecture | loss | seeds | {header} | {curves} |",
             "|---|---|---|" + "---|" * (len(COLUMNS) + 4)]
    cells = {}
    for r in results:
        cells.setdefault((r["architecture"], r["loss"]), []).append(r)
    for (architecture, loss), runs in cells.items():
        seeds = ", ".join(str(r["seed"]) for r in runs)
        lines.append(f"| {architecture} | {loss} | {seeds} | " + " | ".join(row_values(runs))
                     + " |")
    lines += ["", "Paired differences against the standard loss (same architecture, seed and "
              "initialisation; mean ± std over seeds):", "",
              f"| architecture | loss − standard | seeds | {header} | {curves} |",
              "|---|---|---|" + "---|" * (len(COLUMNS) + 4)]
    for (architecture, loss), runs in cells.items():
        base = {r["seed"]: r for r in cells.get((architecture, "standard"), [])}
        paired = [r for r in runs if r["seed"] in base]
        if loss == "standard" or not paired:
            continue
        seeds = ", ".join(str(r["seed"]) for r in paired)
        lines.append(f"| {architecture} | {loss} | {seeds} | "
                     + " | ".join(row_values(paired, base)) + " |")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot_curves(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    architectures = sorted({r["architecture"] for r in results})
    fig, axes = plt.subplots(2, len(architectures), figsize=(6 * len(architectures), 7),
                             squeeze=False)
    for column, architecture in enumerate(architectures):
        for loss in LOSSES:
            runs = [r for r in results if (r["architecture"], r["loss"]) == (architecture, loss)]
            if not runs:
                continue
            steps = runs[0]["curves"]["step"]
            for row, key in enumerate(("tower_probe_accuracy", "tower_centroid_cosine")):
                values = np.array([r["curves"][key] for r in runs
                                   if r["curves"]["step"] == steps])
                axis = axes[row][column]
                axis.plot(steps, values.mean(axis=0), label=f"{loss} ({len(values)} seeds)")
                if len(values) > 1:
                    axis.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2)
                axis.set_title(f"{architecture}: {key}")
                axis.set_xlabel("optimizer step")
                axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="docs/results/towers_apart")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--architectures", nargs="+", default=["ade", "ade-spl"])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--every", type=int, default=25, help="steps between alignment points")
    parser.add_argument("--runs", default=None,
                        help="where the run folders go (default OUTPUT/runs)")
    parser.add_argument("--data", default=None,
                        help="where to write the training collection (default OUTPUT/data)")
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    data = write_training_collection(args.data or os.path.join(args.output, "data"))
    results = [run_cell(a, l, s, args.output, data, args.epochs, args.every,
                        args.runs or os.path.join(args.output, "runs"))
               for s in args.seeds for a in args.architectures for l in args.losses]
    write_table(results, os.path.join(args.output, "table.md"))
    plot_curves(results, os.path.join(args.output, "alignment.png"))
    from samtone_tf.runs.plots import plot_tsne

    tsne = {f"{r['architecture']} {r['loss']}": {"tsne": np.asarray(r["tsne"]),
                                                  "probe_accuracy": r["probe_accuracy"]}
            for r in results if "tsne" in r}
    if tsne:
        plot_tsne(tsne, os.path.join(args.output, "tsne.png"))


if __name__ == "__main__":
    main()
