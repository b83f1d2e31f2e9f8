"""Parameter-efficient fine-tuning against full fine-tuning, standard vs SamToNe.

    python benchmarks/lora.py --output docs/results/lora [--seeds 0 1 2]
        [--variants full lora8 lora32 ade-lora8] [--losses standard samtone]
        [--lora-learning-rate 5e-4]

Each cell fine-tunes all-MiniLM-L6-v2 on SciFact train as benchmarks/paper.py does (the
default job's hyperparameters, the plain step) with one change per variant:

* ``full``: every weight trains (the paper grid's SDE cell, learning rate 2e-5);
* ``lora8`` / ``lora32``: SDE with LoRA adapters of rank 8 / 32 on every attention query
  and value projection, the rest frozen;
* ``ade-lora8``: ADE-LoRA, one frozen base and a rank-8 adapter set per tower.

The adapters train at ``--lora-learning-rate`` (LoRA's usual rates are 10-50x a full
fine-tune's; 2e-5 barely moves zero-initialised adapters in SciFact's 29 steps). Each cell
runs in its own process and records SciFact test (fine-tuned), ReQA-SQuAD and Cranfield
(shared data), the towers' linear-probe separation (400 + 400 SciFact test pairs),
TowerAlignment's numbers every 10 steps (are ADE-LoRA's towers mixing under SamToNe?),
trainable and total parameters, the process' peak resident memory, the mean train step
time of batch 32 (after two warm-up steps; other cells not running) and the wall time.
Resumable: finished cells are skipped. OUTPUT/table.md: mean ± std over seeds per cell
and the paired SamToNe − standard differences.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

VARIANTS = {"full": {},
            "lora8": {"model.lora_rank": 8},
            "lora32": {"model.lora_rank": 32},
            "ade-lora8": {"model.architecture": "ade-lora", "model.lora_rank": 8}}


ALIGNMENT = ("tower_probe_accuracy", "tower_centroid_cosine", "top1_similarity",
             "mean_query_query", "mean_query_document")  # TowerAlignment's numbers


def peak_rss_gb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return None


def step_seconds(model, steps=6):
    """Mean seconds of a train step on one fixed SciFact batch of 32 (after two)."""
    import tensorflow as tf

    from samtone_tf.data import dataset_for
    from samtone_tf.resources import scifact_path

    batch = next(iter(dataset_for(model, scifact_path(), split="train", batch_size=32)))
    data = tf.data.Dataset.from_tensors(batch).repeat(steps)
    model.fit(data.take(2), verbose=0)
    start = time.perf_counter()
    model.fit(data.take(steps - 2), verbose=0)
    return (time.perf_counter() - start) / (steps - 2)


def run_cell(variant, loss, seed, output, lora_learning_rate, extra=None):
    """One cell, in this process; writes OUTPUT/VARIANT-LOSS-seedS.json. ``extra``:
    more config overrides (a smoke run: a small tower, a few steps)."""
    from paper import LOSSES, PLAIN_STEP, evaluate_and_probe

    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.job import load_run_model, run_training

    run_dir = os.path.join(output, f"{variant}-{loss}-seed{seed}")
    started = time.time()
    overrides = {"training.seed": seed, "evaluation.zero_shot": False,
                 "analysis.every_steps": 10, **PLAIN_STEP, **LOSSES[loss], **VARIANTS[variant]}
    if variant != "full":
        overrides["training.learning_rate"] = lora_learning_rate
    overrides.update(extra or {})
    metrics = run_training(load_config(None, overrides), run_dir, verbose=0)
    model, _ = load_run_model(run_dir)
    with open(os.path.join(run_dir, "history.json")) as handle:
        history = json.load(handle)
    result = {"variant": variant, "loss": loss, "seed": seed, "overrides": overrides,
              "scifact": metrics["fine_tuned"],
              "trainable_parameters": int(sum(v.numpy().size for v in model.trainable_variables)),
              "parameters": int(sum(v.numpy().size for v in {id(w): w for w in model.weights}.values())),
              "alignment": {k: history[k] for k in ("alignment_step", *ALIGNMENT)
                            if k in history}}
    summaries, separation = evaluate_and_probe(model, seed)
    result.update(summaries)
    result["probe_accuracy"] = separation["probe_accuracy"]
    result["wall_time_s"] = round(time.time() - started, 1)
    model.compile(model.optimizer, loss=model.loss_fn)
    result["step_seconds"] = round(step_seconds(model), 3)
    result["peak_rss_gb"] = round(peak_rss_gb(), 3)
    with open(os.path.join(output, f"{variant}-{loss}-seed{seed}.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    return result


KEYS = (("scifact", "ndcg@10"), ("reqa-squad", "mrr@10"), ("cranfield", "ndcg@10"))


def write_table(results, path):
    from paper import _mean_std, paired_rows, save_table

    header = " | ".join(f"{c} {m}" for c, m in KEYS)
    lines = [f"| variant | loss | seeds | {header} | probe acc. | centroid cos. (last) | "
             "trainable | step s | peak GB |", "|---|---|---|" + "---|" * (len(KEYS) + 5)]
    cells = {}
    for r in results:
        cells.setdefault((r["variant"], r["loss"]), []).append(r)
    for (variant, loss), runs in cells.items():
        row = [variant, loss, ", ".join(str(r["seed"]) for r in runs)]
        row += [_mean_std([r[c][m] for r in runs]) for c, m in KEYS]
        row.append(_mean_std([r["probe_accuracy"] for r in runs]))
        row.append(_mean_std([r["alignment"]["tower_centroid_cosine"][-1] for r in runs]))
        row.append(f"{runs[0]['trainable_parameters']:,}")
        steps = [r["step_seconds"] for r in runs if r.get("step_seconds") is not None]
        row.append(f"{min(steps):.2f}" if steps else "–")  # None: measured beside other work
        row.append(f"{max(r['peak_rss_gb'] for r in runs):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "SamToNe − standard, paired by seed (mean ± std over seeds):", "",
              f"| variant | loss − standard | seeds | {header} | probe acc. |",
              "|---|---|---|" + "---|" * (len(KEYS) + 1)]
    lines += paired_rows(cells, lambda variant, loss: (variant, "standard"),
                         extras=("probe_accuracy",), keys=KEYS)
    save_table(lines, path)


def parse_overrides(pairs):
    """["section.key=value", ...] → {key: YAML value}."""
    import yaml

    return {key: yaml.safe_load(value) for key, value in (p.split("=", 1) for p in pairs)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="docs/results/lora")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--losses", nargs="+", default=["standard", "samtone"])
    parser.add_argument("--lora-learning-rate", type=float, default=5e-4)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every cell (a smoke run)")
    parser.add_argument("--cell", nargs=3, metavar=("VARIANT", "LOSS", "SEED"),
                        help=argparse.SUPPRESS)  # one cell, in this process
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    if args.cell:
        variant, loss, seed = args.cell
        run_cell(variant, loss, int(seed), args.output, args.lora_learning_rate,
                 parse_overrides(args.set))
        return
    print(f"# python benchmarks/lora.py {' '.join(sys.argv[1:])}", flush=True)
    results = []
    for seed in args.seeds:  # seed-major: a first seed of every cell comes first
        for variant in args.variants:
            for loss in args.losses:
                path = os.path.join(args.output, f"{variant}-{loss}-seed{seed}.json")
                if not os.path.exists(path):
                    done = subprocess.run(
                        [sys.executable, os.path.abspath(__file__), "--output", args.output,
                         "--lora-learning-rate", str(args.lora_learning_rate),
                         "--cell", variant, loss, str(seed), "--set", *args.set])
                    if done.returncode != 0:
                        print(f"# {variant} {loss} seed {seed}: exit {done.returncode}",
                              flush=True)
                        continue
                with open(path) as handle:
                    results.append(json.load(handle))
                print(json.dumps({k: results[-1][k] for k in (
                    "variant", "loss", "seed", "wall_time_s", "step_seconds",
                    "peak_rss_gb")}), flush=True)
    if results:
        write_table(results, os.path.join(args.output, "table.md"))


if __name__ == "__main__":
    main()
