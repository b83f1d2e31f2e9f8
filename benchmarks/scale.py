"""MS MARCO-shaped collections on one machine: the collection store, the training input
and corpus encoding, with memory measured per stage in a fresh process.

    python benchmarks/scale.py --passages 1000000 3000000 --queries 500000 --dev 7000 \\
        --work /tmp/scale [--in-memory] [--encode 50000 200000] [--stages store data job]

For each corpus size it writes (seeded, once) an MS MARCO folder in ``--work``:
``collection.tsv`` (passages of ~390 characters of random words), ``queries.train.tsv``,
``qrels.train.tsv`` (one positive per query), ``queries.dev.tsv``, ``qrels.dev.tsv``. Then,
each in a child process: ``store`` (``samtone prepare``'s build: time, peak anonymous
memory); ``data`` (what ``samtone train`` does before its model exists: the train and
dev splits through the store, the examples, the dataset, and its first batch: peak
anonymous memory and seconds to the first batch; then batches/s of the input pipeline
alone); with ``--in-memory`` the same with the corpus in Python dicts (today's path for
small collections); with ``--encode N ...`` the small tower encoding the first N passages
into the memory-mapped shards (peak anonymous memory, passages/s).

Anonymous memory (``RssAnon``, sampled every 20 ms) is what a process owns; the store's
and the shards' pages are file-backed (``RssFile``) and the kernel can drop them.
"""

import argparse
import itertools
import json
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import print_result, run_child  # noqa: E402


def _anon_gb():
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1e6
    return float("nan")


class PeakAnon:
    """The highest RssAnon seen while it runs (a sampling thread)."""

    def __init__(self, every=0.02):
        self.peak, self.every, self._stop = _anon_gb(), every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _anon_gb())
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _anon_gb())


def generate(folder, passages, queries, dev, seed=0):
    """The synthetic MS MARCO folder (skipped when its marker says it is complete)."""
    marker = os.path.join(folder, "generated.json")
    spec = {"passages": passages, "queries": queries, "dev": dev, "seed": seed}
    if os.path.exists(marker) and json.load(open(marker)) == spec:
        return
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocabulary = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"),
                                              size=rng.integers(2, 10)))
                           for _ in range(30_000)])
    with open(os.path.join(folder, "collection.tsv"), "w", encoding="utf-8") as out:
        for start in range(0, passages, 100_000):
            rows = min(100_000, passages - start)
            words = vocabulary[rng.integers(0, len(vocabulary), size=(rows, 60))]
            out.write("".join(f"{start + i}\t{' '.join(row)[:390]}\n"
                              for i, row in enumerate(words)))
    for split, count, offset in (("train", queries, 0), ("dev", dev, queries)):
        words = vocabulary[rng.integers(0, len(vocabulary), size=(count, 8))]
        positives = rng.integers(0, passages, size=count)
        with open(os.path.join(folder, f"queries.{split}.tsv"), "w", encoding="utf-8") as out:
            out.write("".join(f"{offset + i}\t{' '.join(w)}\n" for i, w in enumerate(words)))
        with open(os.path.join(folder, f"qrels.{split}.tsv"), "w", encoding="utf-8") as out:
            out.write("".join(f"{offset + i}\t0\t{p}\t1\n" for i, p in enumerate(positives)))
    json.dump(spec, open(marker, "w"))


def generate_triples(folder, triples, passages, seed=1):
    """``qidpidtriples.train.full.tsv``: ``triples`` rows of a training query, its
    positive and a random negative passage (skipped when its marker matches)."""
    marker = os.path.join(folder, "triples.json")
    if os.path.exists(marker) and json.load(open(marker)) == {"triples": triples, "seed": seed}:
        return
    pairs = np.loadtxt(os.path.join(folder, "qrels.train.tsv"), dtype=np.int64,
                       usecols=(0, 2))
    rng = np.random.default_rng(seed)
    with open(os.path.join(folder, "qidpidtriples.train.full.tsv"), "w") as out:
        for start in range(0, triples, 1_000_000):
            rows = min(1_000_000, triples - start)
            pick = pairs[rng.integers(0, len(pairs), size=rows)]
            negatives = rng.integers(0, passages, size=rows)
            out.write("".join(f"{q}\t{p}\t{n}\n" for q, p, n in
                              zip(pick[:, 0].tolist(), pick[:, 1].tolist(), negatives.tolist())))
    json.dump({"triples": triples, "seed": seed}, open(marker, "w"))


def stage_store(folder, store):
    from samtone_tf.data.store_build import build_store

    started = time.monotonic()
    with PeakAnon() as peak:
        manifest = build_store(folder, store, "msmarco", log=lambda *a: None)
    print_result({"stage": "store", "documents": manifest["corpus"]["documents"],
                  "seconds": round(time.monotonic() - started, 1),
                  "peak_anon_gb": round(peak.peak, 3)})


def stage_data(folder, store_dir, in_memory, batches=50, triples=False):
    """What samtone train does with its data before building the model."""
    os.environ["SAMTONE_STORE_DIR"] = store_dir
    os.environ["SAMTONE_STORE_MIN_BYTES"] = str(1 << 60) if in_memory else "0"
    started = time.monotonic()
    with PeakAnon() as peak:
        import tensorflow as tf  # noqa: F401  (imported before the clock's data part)

        base = _anon_gb()
        loaded = time.monotonic()
        from samtone_tf.data.loaders import load_collection
        from samtone_tf.data.pipeline import training_dataset
        from samtone_tf.models import SmallTransformer
        from samtone_tf.runs.config import load_config
        from samtone_tf.runs.job import training_examples

        train = load_collection(folder, "train", "msmarco")
        dev = load_collection(folder, "dev", "msmarco")
        overrides = {"data.triples": os.path.join(folder, "qidpidtriples.train.full.tsv"),
                     "data.num_hard_negatives": 1} if triples else {}
        examples = training_examples(load_config(overrides=overrides), train)
        tokenizer = SmallTransformer().make_tokenizer(128)
        dataset = training_dataset(examples, tokenizer, tokenizer, 64, seed=0)
        iterator = iter(dataset)
        next(iterator)
        first = time.monotonic() - loaded
        timed = time.monotonic()
        for _ in range(batches):
            next(iterator)
        rate = batches / (time.monotonic() - timed)
    print_result({"stage": "data (in memory)" if in_memory else (
                      "data (store, triples)" if triples else "data (store)"),
                  "documents": len(train.corpus), "examples": len(examples),
                  "dev_queries": len(dev.queries),
                  "tensorflow_anon_gb": round(base, 3), "peak_anon_gb": round(peak.peak, 3),
                  "data_side_gb": round(peak.peak - base, 3),
                  "seconds_to_first_batch": round(first, 1),
                  "input_batches_per_s": round(rate, 1), "batch": 64,
                  "total_seconds": round(time.monotonic() - started, 1)})


def stage_encode(folder, store_dir, count, work):
    import keras

    from samtone_tf.data.store_build import load_stored
    from samtone_tf.models import DualEncoder, SmallTransformer
    from samtone_tf.retrieval.encoder import encode_in_shards

    os.environ["SAMTONE_STORE_DIR"] = store_dir
    keras.utils.set_random_seed(0)
    model = DualEncoder(SmallTransformer(), document_max_length=128)
    corpus = load_stored(folder, "dev", "msmarco").corpus

    class First:  # the first `count` passages of the stored corpus
        fingerprint = f"{corpus.fingerprint}:{count}"

        def __len__(self):
            return count

        def texts(self, start, stop):
            return corpus.texts(start, stop)

        def ids_at(self, rows):
            return corpus.ids_at(rows)

    with PeakAnon() as peak:
        base = _anon_gb()
        started = time.monotonic()
        vectors = encode_in_shards(model, First(), work, shard_size=50_000, batch_size=128,
                                   progress=False)
        seconds = time.monotonic() - started
    print_result({"stage": "encode", "passages": count, "dim": int(vectors.shape[1]),
                  "before_gb": round(base, 3), "peak_anon_gb": round(peak.peak, 3),
                  "passages_per_s": round(count / seconds, 1)})


def stage_bm25(folder, store_dir, count):
    """BM25 hard-negative mining (``samtone mine --bm25 --num 8 --range 0-100``) of the
    first ``count`` judged training queries over the stored corpus: the inverted index
    built into the store (or opened when it is there), then the mining; peak anonymous
    memory of the whole process (the training split's queries and qrels included)."""
    from samtone_tf.data.common import Collection
    from samtone_tf.data.store_build import load_stored
    from samtone_tf.retrieval.bm25 import bm25_index
    from samtone_tf.retrieval.mining import mine_bm25

    os.environ["SAMTONE_STORE_DIR"] = store_dir
    with PeakAnon() as peak:
        train = load_stored(folder, "train", "msmarco")
        loaded = _anon_gb()
        started = time.monotonic()
        index = bm25_index(train)
        built = time.monotonic() - started
        after_index = peak.peak
        subset = Collection(train.corpus, dict(itertools.islice(train.queries.items(), count)),
                            train.qrels, train.split, train.path)
        started = time.monotonic()
        negatives, report = mine_bm25(subset, num=8, window=(0, 100))
        mined = time.monotonic() - started
    print_result({"stage": "bm25 mining", "documents": len(train.corpus),
                  "terms": len(index.vocabulary), "postings": int(index.indptr[-1]),
                  "index_seconds": round(built, 1), "after_load_gb": round(loaded, 3),
                  "peak_through_index_gb": round(after_index, 3),
                  "queries": report["queries"], "kept": report["kept"],
                  "mining_seconds": round(mined, 1),
                  "queries_per_s": round(report["queries"] / mined, 1),
                  "peak_anon_gb": round(peak.peak, 3)})


def _small_384():
    import keras

    from samtone_tf.models import DualEncoder, SmallTransformer

    keras.utils.set_random_seed(0)
    return DualEncoder(SmallTransformer(hidden_dim=384, intermediate_dim=768),
                       document_max_length=128)


def stage_index(folder, store_dir, work):
    """``samtone index --quantization int8`` of the whole stored corpus from cached
    shards: the shards are filled with seeded random unit vectors (384 dimensions) in the
    encoder's documented format (``samtone_tf.retrieval.encoder``: ``vectors.npy`` and a
    ``rows-START-STOP.json`` record per shard), so the build's memory is measured without
    hours of encoding; then the index is written (peak anonymous memory, size on disk)."""
    import hashlib

    from samtone_tf.data.common import CorpusRows
    from samtone_tf.data.store_build import load_stored
    from samtone_tf.retrieval.encoder import shards_folder
    from samtone_tf.retrieval.index import build_index

    os.environ["SAMTONE_STORE_DIR"] = store_dir
    collection = load_stored(folder, "dev", "msmarco")
    model = _small_384()
    shard_dir, shard = os.path.join(work, "index-shards"), 50_000
    rows = len(collection.corpus)
    vectors_dir = shards_folder(shard_dir, model, CorpusRows(collection.corpus))
    os.makedirs(vectors_dir, exist_ok=True)
    path = os.path.join(vectors_dir, "vectors.npy")
    if not os.path.exists(os.path.join(vectors_dir, f"rows-{(rows - 1) // shard * shard}-"
                                                    f"{rows}.json")):
        vectors = np.lib.format.open_memmap(path, "w+", np.float32, (rows, 384))
        rng = np.random.default_rng(0)
        for start in range(0, rows, shard):
            part = rng.standard_normal((min(shard, rows - start), 384), np.float32)
            part /= np.linalg.norm(part, axis=1, keepdims=True)
            vectors[start:start + len(part)] = part
            json.dump({"rows": [start, start + len(part)],
                       "sha256": hashlib.sha256(part.tobytes()).hexdigest()},
                      open(os.path.join(vectors_dir, f"rows-{start}-{start + len(part)}.json"),
                           "w"))
        vectors.flush()
        del vectors
    output = os.path.join(work, "index-int8")
    with PeakAnon() as peak:
        base = _anon_gb()
        started = time.monotonic()
        build_index(model, collection, output, quantization="int8", shard_size=shard,
                    shard_dir=shard_dir, overwrite=True, progress=False)
        seconds = time.monotonic() - started
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(output)
               for f in files)
    print_result({"stage": "index int8", "documents": rows, "dim": 384,
                  "before_gb": round(base, 3), "peak_anon_gb": round(peak.peak, 3),
                  "index_gb": round(size / 1e9, 3),
                  "peak_minus_index_gb": round(peak.peak - size / 1e9, 3),
                  "seconds": round(seconds, 1)})


def stage_search(folder, work, queries=256, k=10):
    """Loads the int8 index of :func:`stage_index` and searches (peak anonymous memory,
    queries per second at batches of 64)."""
    from samtone_tf.retrieval.index import load_index

    texts = []
    with open(os.path.join(folder, "queries.dev.tsv"), encoding="utf-8") as handle:
        for line in itertools.islice(handle, queries):
            texts.append(line.rstrip("\n").split("\t", 1)[1])
    with PeakAnon() as peak:
        started = time.monotonic()
        module, description = load_index(os.path.join(work, "index-int8"))
        loaded = time.monotonic() - started
        module.search(texts[:64], 10)  # traced once
        started = time.monotonic()
        for start in range(0, len(texts), 64):
            found = module.search(texts[start:start + 64], k)
        seconds = time.monotonic() - started
    print_result({"stage": "search int8", "documents": description["documents"],
                  "load_seconds": round(loaded, 1), "queries": len(texts), "k": k,
                  "queries_per_s": round(len(texts) / seconds, 2),
                  "top_ids_shape": list(found["ids"].shape),
                  "peak_anon_gb": round(peak.peak, 3)})


def stage_hf(folder, work, fresh):
    """Hugging Face ``datasets`` on the same ``collection.tsv`` (what sentence-transformers
    and Tevatron users load): ``load_dataset("csv")`` into its Arrow cache (``fresh``:
    the cache folder emptied first) or from it, then 64 random rows by index; time and
    peak anonymous memory. ``datasets`` is not a dependency: install it to run this."""
    import shutil

    import datasets

    cache = os.path.join(work, "hf-cache", os.path.basename(folder))
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    datasets.disable_progress_bars()
    features = datasets.Features({"id": datasets.Value("string"),
                                  "text": datasets.Value("string")})
    with PeakAnon() as peak:
        base = _anon_gb()
        started = time.monotonic()
        table = datasets.load_dataset("csv", data_files=os.path.join(folder, "collection.tsv"),
                                      delimiter="\t", column_names=["id", "text"], quoting=3,
                                      features=features, split="train", cache_dir=cache)
        seconds = time.monotonic() - started
        rows = np.random.default_rng(0).integers(0, len(table), 64)
        fetched = table[rows.tolist()]["text"]
    print_result({"stage": "hf datasets (build)" if fresh else "hf datasets (cached)",
                  "documents": len(table), "seconds": round(seconds, 1),
                  "before_gb": round(base, 3), "peak_anon_gb": round(peak.peak, 3),
                  "added_gb": round(peak.peak - base, 3), "fetched": len(fetched),
                  "datasets": datasets.__version__})


def stage_store_open(folder, store_dir):
    """Our side of :func:`stage_hf`: the stored corpus opened (built before if absent)
    and 64 random rows read by index; peak anonymous memory."""
    from samtone_tf.data.store import stored_corpus
    from samtone_tf.data.store_build import build_store

    store = os.path.join(store_dir, os.path.basename(folder))
    if not os.path.exists(os.path.join(store, "manifest.json")):
        build_store(folder, store, "msmarco", log=lambda *a: None)
    with PeakAnon() as peak:
        base = _anon_gb()
        started = time.monotonic()
        corpus, _ = stored_corpus(store)
        seconds = time.monotonic() - started
        rows = np.random.default_rng(0).integers(0, len(corpus), 64)
        fetched = corpus.texts_at(rows)
    print_result({"stage": "store (open)", "documents": len(corpus),
                  "seconds": round(seconds, 2), "before_gb": round(base, 3),
                  "peak_anon_gb": round(peak.peak, 3), "added_gb": round(peak.peak - base, 3),
                  "fetched": len(fetched)})


JOB = ["--tower", "small", "--steps", "10", "--batch-size", "32", "--quiet",
       "--set", "data.eval_split=dev", "--set", "evaluation.zero_shot=false",
       "--set", "model.document_max_length=64", "--set", "model.query_max_length=32"]


def whole_job(folder, work):
    """Peak anonymous memory of a whole ``samtone train`` on ``folder`` (store, training,
    fine-tuned evaluation of the whole corpus, export), sampled from the child's /proc."""
    import subprocess

    output = os.path.join(work, "runs", os.path.basename(folder))
    env = dict(os.environ, SAMTONE_STORE_DIR=os.path.join(work, "stores"))
    command = [sys.executable, "-m", "samtone_tf.cli", "train", "--data", folder,
               "--data-format", "msmarco", "--output", output, *JOB]
    started, peak = time.monotonic(), 0.0
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]) / 1e6)
        except OSError:
            pass
        time.sleep(0.05)
    result = {"stage": "whole job", "command": " ".join(["samtone", *command[3:]]),
              "exit_code": child.returncode, "peak_anon_gb": round(peak, 3),
              "seconds": round(time.monotonic() - started, 1)}
    if child.returncode == 0:
        with open(os.path.join(output, "metrics.json"), encoding="utf-8") as handle:
            result["fine_tuned_ndcg@10"] = json.load(handle)["fine_tuned"]["ndcg@10"]
    else:
        result["stderr"] = child.stderr.read()[-500:]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--queries", type=int, default=500_000)
    parser.add_argument("--dev", type=int, default=7_000)
    parser.add_argument("--triples", type=int, default=0,
                        help="also write qidpidtriples.train.full.tsv with this many rows")
    parser.add_argument("--work", default="/tmp/samtone-scale")
    parser.add_argument("--in-memory", action="store_true")
    parser.add_argument("--encode", type=int, nargs="*", default=[])
    parser.add_argument("--stages", nargs="+", default=["store", "data"],
                        choices=("store", "data", "triples", "job", "bm25", "index", "hf"),
                        help="which of the stages to run (job: a whole samtone train with "
                             "the small tower, fine-tuned evaluation of the whole corpus)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mine", type=int, nargs="*", default=[2000, 8000],
                        help="bm25 stage: judged training queries mined, per run")
    args = parser.parse_args()
    stores = os.path.join(args.work, "stores")
    if args.stage == "store":
        return stage_store(args.folder, os.path.join(stores, os.path.basename(args.folder)))
    if args.stage in ("data", "data-in-memory", "triples"):
        return stage_data(args.folder, stores, args.stage == "data-in-memory",
                          triples=args.stage == "triples")
    if args.stage == "bm25":
        return stage_bm25(args.folder, stores, args.count)
    if args.stage == "index":
        return stage_index(args.folder, stores, args.work)
    if args.stage == "store-open":
        return stage_store_open(args.folder, stores)
    if args.stage in ("hf-build", "hf-cached"):
        return stage_hf(args.folder, args.work, args.stage == "hf-build")
    if args.stage == "search":
        return stage_search(args.folder, args.work)
    if args.stage == "encode":
        return stage_encode(args.folder, stores, args.count, os.path.join(args.work, "shards"))
    print(f"# python benchmarks/scale.py {' '.join(sys.argv[1:])}", flush=True)
    me = os.path.abspath(__file__)
    for passages in args.passages:
        folder = os.path.join(args.work, f"msmarco-{passages}")
        started = time.monotonic()
        generate(folder, passages, args.queries, args.dev)
        if args.triples:
            generate_triples(folder, args.triples, passages)
        print(f"# {folder}: generated in {time.monotonic() - started:.0f} s", flush=True)
        stages = [s for s in args.stages if s not in ("job", "bm25", "index", "hf")] + (
            ["data-in-memory"] if args.in_memory else []) + (
            ["index", "search"] if "index" in args.stages else []) + (
            ["hf-build", "hf-cached", "store-open"] if "hf" in args.stages else [])
        if "job" in args.stages:
            print(json.dumps(whole_job(folder, args.work)), flush=True)
        for stage in stages:
            result = run_child([me, "--stage", stage, "--folder", folder, "--work", args.work],
                               {"stage": stage}, stderr_lines=5)
            print(json.dumps(result), flush=True)
        for count in (args.mine if "bm25" in args.stages else []):
            result = run_child([me, "--stage", "bm25", "--folder", folder, "--count",
                                str(count), "--work", args.work], {"stage": "bm25"},
                               stderr_lines=5)
            print(json.dumps(result), flush=True)
        for count in args.encode:
            result = run_child([me, "--stage", "encode", "--folder", folder, "--count",
                                str(count), "--work", args.work], {"stage": "encode"},
                               stderr_lines=5)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
