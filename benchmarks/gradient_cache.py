"""Gradient cache: peak memory and step time of a MiniLM SDE + SamToNe step, with and
without the cache, in one run.

    python benchmarks/gradient_cache.py [--batches 128 512] [--chunk 16] [--budget-gb 8]

Each (global batch, cache on/off) runs in a fresh process (peak resident memory is a
per-process high-water mark): all-MiniLM-L6-v2 SDE, SamToNe query side, Adam, query 64
/ document 256 tokens (full length, so every row costs the same), one traced warm-up
step, then ``--steps`` timed steps. Prints one JSON line per run and a summary with
the time ratio cached / uncached and, for ``--budget-gb``, the largest global batch
that fits either way, from the line through the two measured batches' peaks (an
estimate, labelled as such).
"""

import argparse
import json
import os
import resource
import time

from common import print_result, run_child


def child(batch, chunk, steps, remat=False, dtype=None):
    import keras
    import numpy as np
    import tensorflow as tf

    from common import full_length_tokens

    from samtone_tf import DualEncoder, SamToNeLoss, minilm

    keras.utils.set_random_seed(0)
    model = DualEncoder(minilm(), architecture="sde", query_max_length=64,
                        document_max_length=256, remat=remat, dtype=dtype)
    model.compile(keras.optimizers.Adam(2e-5), loss=SamToNeLoss(0.05, same_tower="query"),
                  gradient_cache_chunk_size=chunk)
    rng = np.random.default_rng(0)

    def tokens(length):
        return full_length_tokens(rng, batch, length)

    batch_data = {"query": tokens(64), "document": tokens(256),
                  "query_ids": np.arange(batch), "document_ids": np.arange(batch)}
    data = tf.data.Dataset.from_tensors(batch_data).repeat(steps + 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    model.fit(data.take(1), verbose=0)  # trace + first step
    start = time.perf_counter()
    history = model.fit(data.take(steps), verbose=0)
    step_s = (time.perf_counter() - start) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB → GB (Linux)
    return {"batch": batch, "chunk": chunk, "remat": remat, "dtype": dtype,
            "step_s": round(step_s, 2),
            "peak_rss_gb": round(peak, 2), "rss_before_first_step_gb": round(before, 2),
            "loss": float(history.history["loss"][-1])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--budget-gb", type=float, default=8.0)
    parser.add_argument("--max-gb", type=float, default=20.0,
                        help="skip a run whose peak, estimated from the smaller batches of the "
                             "same mode, exceeds this (the machine would run out of memory)")
    parser.add_argument("--child", nargs=2, type=int, metavar=("BATCH", "CHUNK"))
    args = parser.parse_args()
    if args.child:
        batch, chunk = args.child
        print_result(child(batch, chunk or None, args.steps))
        return
    results = []
    for batch in sorted(args.batches):
        for chunk in (0, args.chunk):
            points = [(r["batch"], r["peak_rss_gb"]) for r in results
                      if "peak_rss_gb" in r and bool(r["chunk"]) == bool(chunk)]
            if len(points) >= 2:
                (b0, m0), (b1, m1) = points[0], points[-1]
                estimate = m1 + (m1 - m0) / (b1 - b0) * (batch - b1)
                if estimate > args.max_gb:
                    result = {"batch": batch, "chunk": chunk or None,
                              "skipped": f"estimated peak {estimate:.1f} GB > --max-gb "
                                         f"{args.max_gb:g}"}
                    print(json.dumps(result), flush=True)
                    results.append(result)
                    continue
            result = run_child([__file__, "--child", str(batch), str(chunk), "--steps",
                                str(args.steps)], {"batch": batch, "chunk": chunk or None})
            print(json.dumps(result), flush=True)
            results.append(result)
    ok = [r for r in results if "peak_rss_gb" in r]
    summary = {"machine": os.uname().machine, "cpus": os.cpu_count(), "ratios": {}}
    for batch in args.batches:
        plain = next((r for r in ok if r["batch"] == batch and not r["chunk"]), None)
        cached = next((r for r in ok if r["batch"] == batch and r["chunk"]), None)
        if plain and cached:
            summary["ratios"][batch] = {
                "time_cached_over_uncached": round(cached["step_s"] / plain["step_s"], 3),
                "peak_rss_cached_over_uncached": round(cached["peak_rss_gb"] /
                                                       plain["peak_rss_gb"], 3)}
    for name, on in (("uncached", False), ("cached", True)):
        points = sorted((r["batch"], r["peak_rss_gb"]) for r in ok if bool(r["chunk"]) == on)
        if len(points) >= 2:
            (b0, m0), (b1, m1) = points[0], points[-1]
            slope = (m1 - m0) / (b1 - b0)
            fits = int((args.budget_gb - m0) / slope + b0) if slope > 0 else None
            summary[f"largest_batch_in_{args.budget_gb:g}_gb_{name}_estimate"] = fits
            summary[f"gb_per_row_{name}"] = round(slope, 4)
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
