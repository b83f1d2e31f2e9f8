"""Accelerator benchmark: MiniLM SDE + SamToNe training step and encoding, samtone_tf
(float32 / mixed precision / XLA / both) vs sentence-transformers (MNRL query_to_doc +
query_to_query = SamToNe's query side, torch autocast) on the same device, one run.

    python benchmarks/accelerator.py                 # GPU: batch 256, q64 / d256 tokens
    python benchmarks/accelerator.py --cpu           # CPU mode: batch 16, fewer steps

Each configuration runs in a fresh process (so peak memory and dtype policies do not
leak): one warm-up step (tracing / compilation), then ``--steps`` timed steps on fixed
full-length token batches (every row costs the same). Prints one JSON line per
configuration (step seconds, examples/s, peak accelerator memory, final loss) and a
summary with ratios against samtone_tf float32 and against sentence-transformers.
Encoding: ``--docs`` SciFact abstracts at 256 tokens, docs/s for both libraries.
At most about 5 minutes on one GPU with the defaults.
"""

import argparse
import json
import os
import subprocess
import time

from common import print_result, run_child


def _tf_peak_gb():
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # RSS on CPU
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 1e9


def samtone(batch, steps, precision, jit, docs):
    import keras
    import numpy as np
    import tensorflow as tf

    from common import full_length_tokens

    from samtone_tf import DualEncoder, SamToNeLoss, minilm

    keras.utils.set_random_seed(0)
    dtype = {"float32": None, "mixed": "mixed_bfloat16", "fp16": "mixed_float16"}[precision]
    model = DualEncoder(minilm(), query_max_length=64, document_max_length=256, dtype=dtype,
                        padding="max_length", encode_jit_compile=jit)
    model.compile(keras.optimizers.Adam(2e-5), loss=SamToNeLoss(0.05, same_tower="query"),
                  jit_compile=jit)
    rng = np.random.default_rng(0)

    def tokens(length):
        return full_length_tokens(rng, batch, length)

    data = tf.data.Dataset.from_tensors({"query": tokens(64), "document": tokens(256)}).repeat()
    model.fit(data.take(1), verbose=0)
    start = time.perf_counter()
    history = model.fit(data.take(steps), verbose=0)
    step_s = (time.perf_counter() - start) / steps
    out = {"library": "samtone_tf", "precision": precision, "jit": jit, "batch": batch,
           "step_s": round(step_s, 4), "examples_per_s": round(batch / step_s, 1),
           "peak_gb": round(_tf_peak_gb(), 2), "loss": float(history.history["loss"][-1])}
    if docs:
        texts = _documents(docs)
        model.encode_documents(texts[:64], batch_size=64)
        start = time.perf_counter()
        model.encode_documents(texts, batch_size=64)
        out["encode_docs_per_s"] = round(len(texts) / (time.perf_counter() - start), 1)
    return out


def sentence_transformers(batch, steps, precision, docs):
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer, losses

    from samtone_tf.models import minilm_path

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = SentenceTransformer(minilm_path(), device=device)
    model.max_seq_length = 256
    loss = losses.MultipleNegativesRankingLoss(
        model, scale=20.0, directions=("query_to_doc", "query_to_query"))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-5)
    rng = np.random.default_rng(0)

    def features(length):
        ids = torch.tensor(rng.integers(1000, 30000, size=(batch, length)), device=device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "token_type_ids": torch.zeros_like(ids)}

    inputs = [features(64), features(256)]
    autocast_dtype = torch.bfloat16 if precision == "mixed" else None

    def step():
        optimizer.zero_grad()
        with torch.autocast(device_type=device, dtype=autocast_dtype,
                            enabled=autocast_dtype is not None):
            value = loss(inputs, None)
        value.backward()
        optimizer.step()
        return float(value)

    model.train()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        value = step()
    if device == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 1e9
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    out = {"library": "sentence-transformers", "precision": precision, "jit": False,
           "batch": batch, "step_s": round(step_s, 4), "examples_per_s": round(batch / step_s, 1),
           "peak_gb": round(peak, 2), "loss": value}
    if docs:
        texts = _documents(docs)
        model.eval()
        model.encode(texts[:64], batch_size=64)
        start = time.perf_counter()
        model.encode(texts, batch_size=64)
        out["encode_docs_per_s"] = round(len(texts) / (time.perf_counter() - start), 1)
    return out


def _documents(count):
    from samtone_tf.data.beir import read_corpus
    from samtone_tf.resources import scifact_path

    corpus = read_corpus(os.path.join(scifact_path(), "corpus.jsonl.gz"))
    return [doc.full_text for doc in list(corpus.values())[:count]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="CPU mode: small batch, few steps")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--docs", type=int)
    parser.add_argument("--timeout", type=int, default=240, help="seconds per configuration")
    parser.add_argument("--child", nargs=3, metavar=("LIBRARY", "PRECISION", "JIT"))
    args = parser.parse_args()
    batch = args.batch or (16 if args.cpu else 256)
    steps = args.steps or (2 if args.cpu else 10)
    docs = args.docs if args.docs is not None else (200 if args.cpu else 2000)
    if args.child:
        library, precision, jit = args.child
        if library == "samtone_tf":
            result = samtone(batch, steps, precision, jit == "1", docs)
        else:
            result = sentence_transformers(batch, steps, precision, docs)
        print_result(result)
        return
    runs = [("samtone_tf", "float32", "0"), ("samtone_tf", "mixed", "0"),
            ("samtone_tf", "float32", "1"), ("samtone_tf", "mixed", "1"),
            ("sentence-transformers", "float32", "0"), ("sentence-transformers", "mixed", "0")]
    results = []
    for library, precision, jit in runs:
        result = run_child([__file__, "--child", library, precision, jit, "--batch",
                            str(batch), "--steps", str(steps), "--docs", str(docs)],
                           {"library": library, "precision": precision, "jit": jit == "1"},
                           timeout=args.timeout, stderr_lines=3)
        print(json.dumps(result), flush=True)
        results.append(result)
    ok = [r for r in results if "step_s" in r]
    base = next((r for r in ok if r["library"] == "samtone_tf" and r["precision"] == "float32"
                 and not r["jit"]), None)
    summary = {"device": _device_name(), "batch": batch, "steps": steps}
    for r in ok:
        name = f"{r['library']}/{r['precision']}{'/xla' if r['jit'] else ''}"
        row = {"examples_per_s": r["examples_per_s"], "peak_gb": r["peak_gb"]}
        if base:
            row["speed_vs_samtone_float32"] = round(base["step_s"] / r["step_s"], 3)
        same = next((s for s in ok if s["library"] == "sentence-transformers"
                     and s["precision"] == r["precision"]), None)
        if same and r["library"] == "samtone_tf":
            row["time_vs_sentence_transformers"] = round(r["step_s"] / same["step_s"], 3)
            if "encode_docs_per_s" in r and "encode_docs_per_s" in same:
                row["encode_vs_sentence_transformers"] = round(
                    r["encode_docs_per_s"] / same["encode_docs_per_s"], 3)
        summary[name] = row
    print("SUMMARY " + json.dumps(summary))


def _device_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"CPU ({os.cpu_count()} cores; GPU figures not measured in this run)"


if __name__ == "__main__":
    main()
