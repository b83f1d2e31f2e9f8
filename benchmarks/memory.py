"""Peak memory and time of one training step, by memory-saving option, in one run.

    python benchmarks/memory.py [--batch 32] [--steps 2] [--variants plain remat ...]

The default job's step (all-MiniLM-L6-v2 SDE + SamToNe, Adam, queries 64 / documents
256 tokens at full length) under each option, each in a fresh process (peak resident
memory is a per-process high-water mark): ``plain`` (float32, every activation kept),
``remat`` (``DualEncoder(remat=True)``: each transformer layer recomputed in the
backward pass, :mod:`samtone_tf.remat`), ``cache`` (gradient cache, chunks of 8),
``cache+remat``, ``bf16`` (mixed_bfloat16) and ``bf16+remat``. Prints one JSON line per variant and a
summary with each variant's step time and peak memory relative to ``plain`` (same run).
The whole job's peak is measured with ``/usr/bin/time -v samtone train`` (RESULTS.md).
"""

import argparse
import json
import os

from common import print_result, run_child

VARIANTS = {"plain": dict(chunk=0, remat=False, dtype=None),
            "remat": dict(chunk=0, remat=True, dtype=None),
            "cache": dict(chunk=8, remat=False, dtype=None),
            "bf16": dict(chunk=0, remat=False, dtype="mixed_bfloat16"),
            "cache+remat": dict(chunk=8, remat=True, dtype=None),
            "bf16+remat": dict(chunk=0, remat=True, dtype="mixed_bfloat16")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--child", choices=list(VARIANTS))
    args = parser.parse_args()
    if args.child:
        from gradient_cache import child

        v = VARIANTS[args.child]
        result = child(args.batch, v["chunk"] or None, args.steps, v["remat"], v["dtype"])
        print_result({"variant": args.child, **result})
        return
    results = {}
    for name in args.variants:
        result = run_child([__file__, "--child", name, "--batch", str(args.batch), "--steps",
                            str(args.steps)], {"variant": name})
        print(json.dumps(result), flush=True)
        results[name] = result
    base = results.get("plain", {})
    summary = {"machine": os.uname().machine, "cpus": os.cpu_count(), "batch": args.batch}
    for name, r in results.items():
        if "step_s" in r and "step_s" in base:
            summary[name] = {"time_over_plain": round(r["step_s"] / base["step_s"], 3),
                             "peak_rss_gb": r["peak_rss_gb"],
                             "peak_over_plain": round(r["peak_rss_gb"] / base["peak_rss_gb"], 3)}
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
