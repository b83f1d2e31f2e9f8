"""Peak memory and time of one training step, by memory-saving option, in one run.

    python benchmarks/memory.py [--batch 32] [--steps 2] [--variants plain remat ...]

The default job's step (all-MiniLM-L6-v2 SDE + SamToNe, Adam, queries 64 / documents 256
tokens at full length) under each option, each in a fresh process (peak resident memory
is a per-process high-water mark): ``plain`` (float32, every activation kept), ``remat``
(``DualEncoder(remat=True)``: each transformer layer recomputed in the backward pass,
:mod:`samtone_tf.layers.remat`), ``cache`` (gradient cache, chunks of 8), ``cache+remat``,
``cache4+remat`` (chunks of 4), ``cache4`` / ``cache2`` (chunks of 4 / 2 rows, no
remat), ``bf16`` (mixed_bfloat16) and ``bf16+remat``. Prints one JSON line per variant
and a summary with each variant's step time and peak memory relative to ``plain`` (same
run).

``--job OUTPUT [--set KEY=VALUE ...]`` runs the whole default job instead, ``samtone
train --output OUTPUT`` with the given ``--set`` overrides, in a child process, and prints
its peak resident memory (the child's ``ru_maxrss``, what ``/usr/bin/time -v`` reports),
the peak sampled in each phase of the job (the job's own printed lines mark the phases:
loading, zero-shot evaluation, training, fine-tuned evaluation, export ...), its wall time
and its SciFact nDCG@10 (zero-shot and fine-tuned, from OUTPUT/metrics.json).
OUTPUT must not exist yet (the job writes it; nothing is deleted).

``--python-example [FILE]`` runs the Python example of FILE (README.md: the MiniLM
fine-tune, the first ```python block that calls ``.fit(``) as written, in a fresh process
and a new temporary folder, and prints its peak resident memory and wall time: the Python
API's memory next to the job's (``--job``), run one after the other.

``--encoding BATCH [BATCH ...] [--docs 512]`` times the job's evaluation encoding instead:
SciFact abstracts with pretrained all-MiniLM-L6-v2 at each batch size, each twice
(alternating), each in a fresh process; docs/s and peak resident memory.

``--breakdown [--variants ...] [--env KEY=VALUE ...]`` follows one process through the
job's stages instead, each variant in a fresh process: resident memory after the imports
(with its file-backed part: shared libraries), after building MiniLM + Adam, the peak of
encoding 256 random 256-token documents (at the job's ``evaluation.batch_size``), the
peak of ``--steps`` training steps fed with unknown widths (one trace, as in the job:
256, 240, 224, ... tokens), the mean time of the steps after the first, the memory after
:func:`samtone_tf.runs.memory.release_training_memory`, and the peak of encoding again.
``--env`` sets an environment variable in the children (e.g. the allocator:
``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=true``).
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
            "cache4+remat": dict(chunk=4, remat=True, dtype=None),
            "cache4": dict(chunk=4, remat=False, dtype=None),
            "cache2": dict(chunk=2, remat=False, dtype=None),
            "bf16+remat": dict(chunk=0, remat=True, dtype="mixed_bfloat16")}


def _status(pid="self"):
    """A process' VmRSS, VmHWM (its peak), RssAnon and RssFile in GB (Linux /proc);
    {} once the process is gone."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    values[key] = round(int(line.split()[1]) / 1e6, 3)
    except OSError:
        pass
    return values


def job(output, overrides, timeline=None):
    """Peak RSS (whole job and by phase), wall time and nDCG@10 of ``samtone train
    --output OUTPUT [--set ...]``. The phase is the job's last printed line that is not
    a progress bar or a TensorFlow log line; the child's resident memory is sampled
    every 0.2 s (Linux /proc) and the maximum kept per phase. With ``timeline`` (a file
    name) every sample and every line the job printed go there too, one JSON object a
    line with its time since the start: ``{"t", "rss_gb"}`` or ``{"t", "line"}``."""
    import resource
    import subprocess
    import sys
    import threading
    import time

    if os.path.exists(output):
        raise SystemExit(f"--job: {output} exists; give a new folder (the job writes it)")
    command = [sys.executable, "-u", "-c", "import sys; from samtone_tf.cli import main; "
               "sys.exit(main(sys.argv[1:]))", "train", "--output", output]
    for override in overrides:
        command += ["--set", override]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace", bufsize=1)
    phase = ["start"]
    peaks = {}
    log = open(timeline, "w") if timeline else None

    def record(**item):
        if log:
            log.write(json.dumps({"t": round(time.perf_counter() - start, 2), **item}) + "\n")

    def sample():
        while child.poll() is None:
            rss = _status(child.pid).get("VmRSS")
            if rss is not None:
                peaks[phase[0]] = max(peaks.get(phase[0], 0.0), rss)
                record(rss_gb=rss)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in child.stdout:
        sys.stdout.write(line)
        text = line.strip()
        record(line=text[:200])
        if (text and "━" not in text and not line[:1].isspace()
                and "Warning" not in text and not text[:5] in ("E0000", "I0000", "W0000")
                and not text.startswith(("WARNING", "|", "To enable", "Epoch"))
                and "cuda" not in text and "oneDNN" not in text):
            phase[0] = text[:80]
    code = child.wait()
    sampler.join()
    wall = time.perf_counter() - start
    if log:
        log.close()
    result = {"job": "samtone train", "overrides": overrides, "exit_code": code,
              "wall_s": round(wall, 1),
              # the largest RSS of any waited-for child: this job (the only child)
              "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                   / 1e6, 3),
              "sampled_peak_gb_by_phase": {k: round(v, 3) for k, v in peaks.items()}}
    metrics_file = os.path.join(output, "metrics.json")
    if code == 0 and os.path.exists(metrics_file):
        with open(metrics_file) as f:
            metrics = json.load(f)
        result["ndcg@10"] = {name: metrics[name].get("ndcg@10") for name in metrics
                             if isinstance(metrics[name], dict) and "ndcg@10" in metrics[name]}
    return result


def python_example(source):
    """Peak RSS and wall time of the Python example in ``source`` (the first ```python
    block that calls ``.fit(``), run as it is written in a fresh process, in a new
    temporary folder (it writes its model there; the folder is removed afterwards)."""
    import re
    import resource
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    with open(source, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    code = next((block for block in blocks if ".fit(" in block), None)
    if code is None:
        raise SystemExit(f"--python-example: no ```python block with .fit( in {source}")
    folder = tempfile.mkdtemp(prefix="samtone-example-")
    try:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], cwd=folder, text=True,
                              capture_output=True)
        wall = time.perf_counter() - start
    finally:
        shutil.rmtree(folder)
    if done.returncode:
        raise SystemExit(f"--python-example failed:\n{done.stderr[-3000:]}")
    return {"python_example": source, "exit_code": done.returncode,
            "wall_s": round(wall, 1), "output": done.stdout.strip()[-200:],
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                 / 1e6, 3)}


def breakdown(batch, chunk, steps, remat, dtype):
    """Resident memory of one process at each stage of the job (see the module doc)."""
    import time

    import numpy as np

    from samtone_tf.heap import limit_arenas

    limit_arenas()  # as `samtone` does first (MALLOC_ARENA_MAX from --env wins)
    import samtone_tf.retrieval  # noqa: F401  (the job's imports)
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.memory import release_training_memory
    from samtone_tf.losses.samtone import SamToNeLoss
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.models import minilm

    import keras
    import tensorflow as tf

    imported = _status()
    result = {"imports_gb": imported["VmRSS"], "imports_file_backed_gb": imported["RssFile"]}
    eval_batch = load_config()["evaluation"]["batch_size"]  # the job's
    if dtype:
        keras.mixed_precision.set_global_policy(dtype)
    keras.utils.set_random_seed(0)
    model = DualEncoder(minilm(), architecture="sde", remat=remat)
    model.compile(keras.optimizers.Adam(2e-5), loss=SamToNeLoss(0.05),
                  gradient_cache_chunk_size=chunk)
    result["built_gb"] = _status()["VmRSS"]
    rng = np.random.default_rng(0)
    documents = rng.integers(1000, 30000, (256, 256)).astype("int32")
    tokens = {"token_ids": documents, "padding_mask": np.ones_like(documents)}
    model.encode_documents(tokens, batch_size=eval_batch)
    result["encoding_peak_gb"] = _status()["VmHWM"]

    def batches():
        for step in range(steps):
            width = 256 - 16 * step
            ids = rng.integers(1000, 30000, (batch, width)).astype("int32")
            yield {"query": {"token_ids": ids[:, :64], "padding_mask": np.ones_like(ids[:, :64])},
                   "document": {"token_ids": ids, "padding_mask": np.ones_like(ids)},
                   "query_ids": np.arange(batch), "document_ids": np.arange(batch) + batch}

    side = {"token_ids": tf.TensorSpec([None, None], tf.int32),
            "padding_mask": tf.TensorSpec([None, None], tf.int32)}
    data = tf.data.Dataset.from_generator(batches, output_signature={
        "query": side, "document": side, "query_ids": tf.TensorSpec([None], tf.int64),
        "document_ids": tf.TensorSpec([None], tf.int64)})
    ends = []
    stamp = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda _step, logs=None: ends.append(time.perf_counter()))
    history = model.fit(data, verbose=0, callbacks=[stamp])
    after = _status()
    result.update(training_peak_gb=after["VmHWM"], after_training_gb=after["VmRSS"],
                  loss=[round(x, 4) for x in history.history["loss"]])
    if len(ends) > 1:
        result["step_s"] = round((ends[-1] - ends[0]) / (len(ends) - 1), 3)
    release_training_memory(model)
    result["released_gb"] = _status()["VmRSS"]
    model.encode_documents(tokens, batch_size=eval_batch)
    final = _status()
    result.update(encoding_again_gb=final["VmRSS"], peak_rss_gb=final["VmHWM"])
    return result


def encoding(batch, docs):
    """docs/s and peak resident memory of encoding ``docs`` SciFact abstracts (test
    corpus, title + text, 256 tokens) with pretrained all-MiniLM-L6-v2 at ``batch`` rows
    per batch, as the job's evaluation does (after one warm-up encoding of 64)."""
    import time

    from samtone_tf.heap import limit_arenas

    limit_arenas()  # as `samtone` does first
    from samtone_tf.cli.models import pretrained_model
    from samtone_tf.data.loaders import load_collection
    from samtone_tf.retrieval.corpus import encode_corpus
    from samtone_tf.resources import scifact_path

    corpus = load_collection(scifact_path(), "test", "beir").corpus
    texts = [d.full_text for d in list(corpus.values())[:docs]]  # as evaluate_model
    model = pretrained_model("minilm", "sde", None, None)
    built = _status()["VmRSS"]
    encode_corpus(model, texts[:64], batch_size=batch, progress=False)
    start = time.perf_counter()
    encode_corpus(model, texts, batch_size=batch, progress=False)
    seconds = time.perf_counter() - start
    return {"docs": len(texts), "docs_s": round(len(texts) / seconds, 2), "built_gb": built,
            "peak_rss_gb": _status()["VmHWM"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--child")
    parser.add_argument("--job", metavar="OUTPUT",
                        help="run the whole `samtone train --output OUTPUT` instead")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="with --job: a config override passed to samtone train")
    parser.add_argument("--timeline", metavar="FILE",
                        help="with --job: every RSS sample and printed line, timed (job's doc)")
    parser.add_argument("--breakdown", action="store_true",
                        help="memory at each stage of the job, per variant (module doc)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="with --breakdown: an environment variable for the children")
    parser.add_argument("--encoding", type=int, nargs="+", metavar="BATCH",
                        help="encoding speed and peak memory at each evaluation batch size")
    parser.add_argument("--docs", type=int, default=512, help="with --encoding")
    parser.add_argument("--python-example", metavar="FILE", nargs="?", const="README.md",
                        help="peak memory of the Python example in FILE (default README.md)")
    args = parser.parse_args()
    if args.python_example:
        print(json.dumps(python_example(args.python_example)), flush=True)
        return
    if args.encoding and args.child:
        print_result({"batch": int(args.child), **encoding(int(args.child), args.docs)})
        return
    if args.encoding:
        for batch in args.encoding * 2:  # each batch size twice, alternating
            print(json.dumps(run_child([__file__, "--encoding", str(batch), "--child",
                                        str(batch), "--docs", str(args.docs)],
                                       {"batch": batch})), flush=True)
        return
    if args.child and args.child not in VARIANTS:
        parser.error(f"--child: one of {list(VARIANTS)}")
    if args.breakdown and args.child:
        v = VARIANTS[args.child]
        print_result({"variant": args.child, "batch": args.batch,
                      **breakdown(args.batch, v["chunk"] or None, args.steps, v["remat"],
                                  v["dtype"])})
        return
    if args.breakdown:
        env = dict(item.split("=", 1) for item in args.env)
        for name in args.variants:
            result = run_child([__file__, "--breakdown", "--child", name, "--batch",
                                str(args.batch), "--steps", str(args.steps)],
                               {"variant": name}, env=env)
            print(json.dumps({**result, "env": env}), flush=True)
        return
    if args.job:
        print(json.dumps(job(args.job, args.set, args.timeline)), flush=True)
        return
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
