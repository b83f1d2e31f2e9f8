"""The collection store and the sharded memory-mapped encoder, against the in-memory
readers and a one-pass in-memory evaluation."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from samtone_tf.data import store_build
from samtone_tf.data.beir import load_beir
from samtone_tf.data.msmarco import load_msmarco
from samtone_tf.data.store import is_store, read_manifest
from samtone_tf.data.store_build import load_stored
from samtone_tf.errors import DataError
from samtone_tf.resources import scifact_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _beir_copy(tmp_path, documents=None):
    """The shipped SciFact as a plain (not gzipped) BEIR folder, optionally cut."""
    folder = tmp_path / "scifact"
    shutil.copytree(scifact_path(), folder)
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        lines = handle.readlines()
    os.remove(folder / "corpus.jsonl.gz")
    (folder / "corpus.jsonl").write_text("".join(lines[:documents] if documents else lines),
                                         encoding="utf-8")
    return folder


def _same_collection(stored, plain):
    assert list(stored.corpus) == list(plain.corpus)
    assert all(stored.corpus[d] == plain.corpus[d] for d in list(plain.corpus)[::7])
    assert stored.queries == plain.queries and stored.qrels == plain.qrels
    ids = list(plain.corpus)
    assert stored.corpus.texts(3, 9) == [plain.corpus[d].full_text for d in ids[3:9]]
    assert stored.corpus.ids_at([5, 0, 5]) == [ids[5], ids[0], ids[5]]
    assert stored.corpus.rows_of([ids[4], "no such id"]).tolist() == [4, -1]
    assert "no such id" not in stored.corpus and ids[-1] in stored.corpus


def test_a_stored_beir_collection_equals_the_in_memory_one(tmp_path):
    for split in ("test", "train"):
        stored = load_stored(scifact_path(), split, store=str(tmp_path / "store"))
        _same_collection(stored, load_beir(scifact_path(), split))
    assert is_store(str(tmp_path / "store"))
    again = load_stored(str(tmp_path / "store"), "test")  # the store itself as the data
    _same_collection(again, load_beir(scifact_path(), "test"))


def test_a_stored_msmarco_collection_equals_the_in_memory_one(tmp_path):
    folder = tmp_path / "msmarco"
    folder.mkdir()
    (folder / "collection.tsv").write_text("".join(f"{p}\tpassage number {p} é\n"
                                                   for p in range(40)), encoding="utf-8")
    (folder / "queries.dev.tsv").write_text("10\tfirst\n11\tsecond\n12\tunjudged\n")
    (folder / "qrels.dev.tsv").write_text("10 0 1 1\n11\t0\t39\t1\n")
    stored = load_stored(str(folder), "dev", "msmarco", store=str(tmp_path / "store"))
    _same_collection(stored, load_msmarco(str(folder), "dev"))
    (folder / "qrels.dev.tsv").write_text("10 0 1 1\n11\t0\t40\t1\n")
    with pytest.raises(DataError, match=r"qrels.dev.tsv:2: passage id '40' is unknown"):
        load_stored(str(folder), "dev", "msmarco", store=str(tmp_path / "store"))


def test_a_killed_build_resumes_after_its_last_part(tmp_path, monkeypatch):
    """A child builds with parts of 1,000 rows (written 300 at a time) and is SIGKILLed
    right after its second part; the rebuild reads only the lines after it and equals a build from scratch."""
    folder = _beir_copy(tmp_path)
    store = tmp_path / "store"
    child = textwrap.dedent(f"""
        import os, signal
        from samtone_tf.data import store_build
        store_build.PART_ROWS, store_build.BATCH_ROWS = 1000, 300
        finish = store_build._finish_part
        def finish_then_die(*args):
            finish(*args)
            if args[1]["parts"] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        store_build._finish_part = finish_then_die
        store_build.build_store({str(folder)!r}, {str(store)!r})
    """)
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert read_manifest(str(store)) is None
    progress = json.loads((store / "building.json").read_text())
    assert (progress["parts"], progress["rows"]) == (2, 2000)

    monkeypatch.setattr(store_build, "PART_ROWS", 1000)
    monkeypatch.setattr(store_build, "BATCH_ROWS", 300)  # parts written in batches
    read, records = [], store_build.corpus_records

    def counting(*args):
        for record in records(*args):
            read.append(record[0])
            yield record

    monkeypatch.setattr(store_build, "corpus_records", counting)
    store_build.build_store(str(folder), str(store))
    plain = load_beir(str(folder), "test")
    assert len(read) == len(plain.corpus) - 2000 and read[0] == 2001
    assert sorted(os.listdir(store / "corpus")) == [f"part-{n:05d}.arrow" for n in range(6)]
    _same_collection(load_stored(str(store), "test"), plain)


def test_a_store_is_reused_while_its_source_stays_the_same(tmp_path):
    folder = _beir_copy(tmp_path, documents=300)
    store = str(tmp_path / "store")
    logged = []
    store_build.build_store(str(folder), store, log=logged.append)
    part = os.path.join(store, "corpus", "part-00000.arrow")
    written = os.stat(part).st_mtime_ns
    store_build.build_store(str(folder), store, log=logged.append)
    assert os.stat(part).st_mtime_ns == written and logged == []
    source = folder / "corpus.jsonl"
    stat, data = os.stat(source), bytearray(source.read_bytes())
    data[10] = ord("X") if data[10] != ord("X") else ord("Y")  # same size, same time
    source.write_bytes(bytes(data))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    store_build.build_store(str(folder), store, log=logged.append)
    assert "changed" in logged.pop()  # the sampled content caught it
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "new", "title": "", "text": "added"}) + "\n")
    with pytest.raises(DataError, match="changed since the store"):
        load_stored(store, "test")  # a store as data never mixes old texts with new files
    manifest = store_build.build_store(str(folder), store, log=logged.append)
    assert manifest["corpus"]["documents"] == 301 and "changed" in logged[0]


def test_a_duplicate_id_names_both_lines_across_parts(tmp_path, monkeypatch):
    folder = _beir_copy(tmp_path, documents=50)
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "4983", "text": "again"}) + "\n")
    monkeypatch.setattr(store_build, "PART_ROWS", 20)
    with pytest.raises(DataError, match=r"corpus.jsonl:51: duplicate document id '4983' "
                                        r"\(first at line 1\)"):
        store_build.build_store(str(folder), str(tmp_path / "store"))


def _tiny_model():
    import keras

    from samtone_tf.models import DualEncoder
    from tests.helpers.builders import tiny_spec

    keras.utils.set_random_seed(3)
    return DualEncoder(tiny_spec(vocab_size=512, max_length=48), query_max_length=16,
                       document_max_length=48)


def _collection_folder(name):
    from tests.shared import shared

    return scifact_path() if name == "scifact" else shared(name)


@pytest.mark.parametrize("name", ["scifact", "cranfield",
                                  pytest.param("reqa-squad", marks=pytest.mark.slow)])
def test_evaluation_through_a_store_equals_one_in_memory_pass(tmp_path, name):
    """Store → memory-mapped shards → block search gives the metrics of encoding the
    whole corpus in one pass and ranking it with one full-matrix top-k (SciFact, and
    the shared Cranfield and ReQA-SQuAD)."""
    import tensorflow as tf

    from samtone_tf.retrieval.corpus import encode_corpus
    from samtone_tf.retrieval.evaluation import evaluate_model
    from samtone_tf.retrieval.metrics import cut_run, evaluate_run

    model = _tiny_model()
    folder = _collection_folder(name)
    plain = load_beir(folder, "test")
    ids = list(plain.corpus)
    docs = encode_corpus(model, [plain.corpus[d].full_text for d in ids], 16, progress=False)
    queries = encode_corpus(model, list(plain.queries.values()), 16, progress=False,
                            side="query")
    scores, top = tf.math.top_k(tf.matmul(queries, docs, transpose_b=True), k=100)
    run = {q: {ids[i]: float(s) for s, i in zip(row_s, row_i)}
           for q, row_s, row_i in zip(plain.queries, scores.numpy(), top.numpy())}
    want, _ = evaluate_run(plain.qrels, cut_run(run, 100))
    stored = load_stored(folder, "test", store=str(tmp_path / "store"))
    got, _, got_run = evaluate_model(model, stored, batch_size=16,
                                     cache_dir=str(tmp_path / "cache"))
    got.pop("ignore_identical_ids")
    assert got == want  # every digit
    assert got_run == cut_run(run, 100)


def test_sharded_encoding_resumes_and_splits_across_processes(tmp_path, monkeypatch):
    from samtone_tf.retrieval.corpus import encode_corpus
    from samtone_tf.retrieval.encoder import encode_in_shards

    model = _tiny_model()
    corpus = load_stored(scifact_path(), "test", store=str(tmp_path / "store")).corpus
    texts = corpus.texts(0, 700)
    want = encode_corpus(model, texts, 16, progress=False)  # one pass
    calls, real = [], model.encode_documents

    def counting(batch, batch_size=64):
        calls.append(len(batch))
        if len(calls) == 3 and kill[0]:
            raise KeyboardInterrupt
        return real(batch, batch_size=batch_size)

    monkeypatch.setattr(model, "encode_documents", counting)
    kill = [True]
    with pytest.raises(KeyboardInterrupt):
        encode_in_shards(model, texts, str(tmp_path / "one"), shard_size=160, batch_size=16,
                         progress=False)
    kill[0], calls[:] = False, []
    one = encode_in_shards(model, texts, str(tmp_path / "one"), shard_size=160, batch_size=16,
                           progress=False)
    assert calls == [160, 160, 60]  # the two finished shards were not encoded again
    assert isinstance(one, np.memmap) and np.array_equal(one, want)
    work = str(tmp_path / "two")
    assert encode_in_shards(model, texts, work, 160, 16, False, role=(1, 2)) is None
    two = encode_in_shards(model, texts, work, 160, 16, False, role=(0, 2), poll_s=0.01)
    assert np.array_equal(two, want)


def test_prepare_command_writes_a_store_that_eval_reads(tmp_path, small_savedmodel, capsys):
    from samtone_tf.cli.main import main

    store = str(tmp_path / "store")
    assert main(["prepare", scifact_path(), "--output", store]) == 0
    assert "5183 documents" in capsys.readouterr().out
    outputs = []
    for data in (store, scifact_path()):
        outputs.append(str(tmp_path / f"{len(outputs)}.json"))
        assert main(["eval", "--model", small_savedmodel, "--data", data,
                     "--output", outputs[-1]]) == 0
    first, second = (json.loads(open(path).read()) for path in outputs)
    assert first.pop("data") == store and second.pop("data") == scifact_path()
    assert first == second
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    assert main(["prepare", scifact_path(), "--output", str(tmp_path / "notes")]) == 2
    assert "not a collection store" in capsys.readouterr().err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize("negatives", [0, 2])
def test_streaming_batches_equal_the_in_memory_pipeline(tmp_path, negatives):
    """A stored corpus' examples (int rows, texts fetched per batch) give the in-memory
    pipeline's batches: the same tokens, and ids equal exactly where those ids are equal."""
    from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
    from samtone_tf.data.streaming import example_columns

    model = _tiny_model()
    plain = load_beir(scifact_path(), "train")
    stored = load_stored(scifact_path(), "train", store=str(tmp_path / "store"))
    ids = list(plain.corpus)
    mined = {q: [ids[(i * 7 + j) % len(ids)] for j in range(negatives)]
             for i, q in enumerate(sorted(plain.qrels))} if negatives else None
    made = [training_dataset(examples, model.query_tokenizer(), model.document_tokenizer(),
                             32, seed=5, epochs=2)
            for examples in (examples_from_qrels(plain, mined, negatives),
                             example_columns(stored, mined, negatives))]
    assert int(made[0].cardinality()) == int(made[1].cardinality()) > 40
    for want, got in zip(*made):
        for side in ["query", "document"] + (["hard_negatives"] if negatives else []):
            for key in ("token_ids", "padding_mask"):
                np.testing.assert_array_equal(got[side][key], want[side][key])
        pool = lambda b: np.concatenate([b["document_ids"].numpy()] + (  # noqa: E731
            [b["hard_negative_ids"].numpy().ravel()] if negatives else []))
        for a, b in ((want["query_ids"].numpy(), got["query_ids"].numpy()),
                     (pool(want), pool(got))):
            np.testing.assert_array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


@pytest.mark.slow  # two whole jobs
def test_a_job_through_a_store_trains_and_scores_as_the_in_memory_job(tmp_path, small_scifact,
                                                                     monkeypatch):
    """samtone train with the corpus read through a store (forced by a 0-byte threshold)
    writes the metrics of the same job with the corpus in memory."""
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.job import run_training

    config = load_config(overrides={
        "data.path": small_scifact, "model.tower": "small", "training.steps": 3,
        "training.global_batch_size": 8, "evaluation.zero_shot": False})
    metrics = []
    for threshold in (None, "0"):
        if threshold is not None:
            monkeypatch.setenv("SAMTONE_STORE_MIN_BYTES", threshold)
            monkeypatch.setenv("SAMTONE_STORE_DIR", str(tmp_path / "stores"))
        run = tmp_path / f"run-{threshold}"
        run_training(config, str(run), verbose=0, log=lambda *a: None)
        metrics.append(json.loads((run / "metrics.json").read_text())["fine_tuned"])
    assert len(os.listdir(tmp_path / "stores")) == 1  # train and eval splits share one store
    assert metrics[0] == metrics[1]


def test_mining_through_a_store_equals_mining_in_memory(tmp_path):
    from samtone_tf.retrieval.mining import mine_from_model

    model = _tiny_model()
    plain = load_beir(scifact_path(), "train")
    stored = load_stored(scifact_path(), "train", store=str(tmp_path / "store"))
    want = mine_from_model(model, plain, num=3, window=(5, 60), absolute_margin=0.01,
                           batch_size=16)
    got = mine_from_model(model, stored, num=3, window=(5, 60), absolute_margin=0.01,
                          batch_size=16)
    assert got == want and want[1]["kept"] > 0


def test_a_process_that_reads_a_few_streamed_batches_exits(tmp_path):
    """tf.data runs the texts' fetch on its own threads; without the exit guard
    (samtone_tf.data.streaming._quiesce) a script that read two batches and ended hung in
    the iterator's destructor (measured: killed after 60 s, TensorFlow 2.21)."""
    child = textwrap.dedent(f"""
        from samtone_tf.data.store_build import load_stored
        from samtone_tf.data.streaming import example_columns, streaming_dataset
        from samtone_tf.models import SmallTransformer
        from samtone_tf.resources import scifact_path
        stored = load_stored(scifact_path(), "train", store={str(tmp_path / "store")!r})
        tokenizer = SmallTransformer().make_tokenizer(64)
        iterator = iter(streaming_dataset(example_columns(stored), tokenizer, tokenizer, 32))
        next(iterator), next(iterator)
        print("read")
    """)
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "read" in done.stdout, done.stderr[-1000:]


def test_bm25_through_a_store_equals_bm25_in_memory(tmp_path):
    from samtone_tf.retrieval.bm25 import bm25_run
    from samtone_tf.retrieval.mining import mine_bm25

    plain = load_beir(scifact_path(), "test")
    stored = load_stored(scifact_path(), "test", store=str(tmp_path / "store"))
    assert bm25_run(stored, k=20) == bm25_run(plain, k=20)
    index = tmp_path / "store" / "bm25-k1_0.9-b_0.4"  # written once into the store
    written = (index / "docs.npy").stat().st_mtime_ns
    assert mine_bm25(stored, num=2, window=(3, 40)) == mine_bm25(plain, num=2, window=(3, 40))
    assert (index / "docs.npy").stat().st_mtime_ns == written  # reused, memory-mapped


def _msmarco_with_triples(tmp_path):
    """A small MS MARCO folder (300 passages, 60 train / 10 dev queries) with 700 id
    triples in ``triples.tsv``; returns (folder, triples)."""
    folder = tmp_path / "msmarco"
    folder.mkdir()
    rng = np.random.default_rng(0)
    (folder / "collection.tsv").write_text("".join(f"{p}\tpassage {p} about topic {p % 7}\n"
                                                   for p in range(300)), encoding="utf-8")
    for split, count in (("train", 60), ("dev", 10)):
        base = 1000 if split == "train" else 5000
        (folder / f"queries.{split}.tsv").write_text(
            "".join(f"{base + q}\tquestion {q} on topic {q % 7}\n" for q in range(count)))
        (folder / f"qrels.{split}.tsv").write_text(
            "".join(f"{base + q}\t0\t{(q * 5) % 300}\t1\n" for q in range(count)))
    triples = [(1000 + int(q), int(p), int(n)) for q, p, n in
               zip(rng.integers(0, 60, 700), rng.integers(0, 300, 700), rng.integers(0, 300, 700))]
    (folder / "triples.tsv").write_text("".join(f"{q}\t{p}\t{n}\n" for q, p, n in triples))
    return folder, triples


def test_prepare_maps_triples_and_builds_bm25_into_the_store(tmp_path, capsys):
    """``samtone prepare --triples --bm25``: the store holds the triples as rows (what
    data.triples then reuses without mapping again) and the BM25 index (whose run equals
    BM25 over the in-memory collection)."""
    from samtone_tf.cli.main import main
    from samtone_tf.data.triples import triple_columns
    from samtone_tf.retrieval.bm25 import bm25_run

    folder, triples = _msmarco_with_triples(tmp_path)
    store = tmp_path / "store"
    assert main(["prepare", str(folder), "--data-format", "msmarco", "--output", str(store),
                 "--triples", str(folder / "triples.tsv"), "--bm25"]) == 0
    out = capsys.readouterr().out
    assert "700 triples mapped" in out and "BM25 index of 300 documents" in out
    mapped = list((store / "triples").glob("*.int32"))
    assert len(mapped) == 1
    written = mapped[0].stat().st_mtime_ns
    train = load_stored(str(store), "train")
    columns = triple_columns(str(folder / "triples.tsv"), train, str(store / "triples"))
    assert mapped[0].stat().st_mtime_ns == written  # reused, not mapped again
    want = [(columns.query_ids.index(str(q)), p, n) for q, p, n in triples]
    assert np.fromfile(mapped[0], np.int32).reshape(-1, 3).tolist() == [list(t) for t in want]
    assert (store / "bm25-k1_0.9-b_0.4" / "index.json").exists()
    assert bm25_run(load_stored(str(store), "dev"), k=10) == bm25_run(
        load_msmarco(str(folder), "dev"), k=10)
    assert main(["prepare", str(folder), "--data-format", "msmarco", "--output",
                 str(tmp_path / "s2"), "--triples", str(folder / "missing.tsv")]) != 0
    assert "missing.tsv" in capsys.readouterr().err


@pytest.mark.slow  # ends with a whole job
def test_training_from_id_triples(tmp_path):
    """MS MARCO id triples become memory-mapped int rows (checked against the file), the
    batches carry each triple's texts with no repeated query or document, a bad id names
    its line, and a job trains from them."""
    from samtone_tf.data.streaming import streaming_dataset
    from samtone_tf.data.triples import triple_columns
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.job import run_training

    folder, triples = _msmarco_with_triples(tmp_path)
    collection = load_stored(str(folder), "train", "msmarco", store=str(tmp_path / "store"))
    columns = triple_columns(str(folder / "triples.tsv"), collection, str(tmp_path / "cache"))
    assert columns.query_ids[0] == "1000" and len(columns) == 700
    want = np.array([(columns.query_ids.index(str(q)), p, n) for q, p, n in triples])
    got = np.stack([columns.query, columns.document, columns.negatives[:, 0]], axis=1)
    np.testing.assert_array_equal(got, want)  # passage p is row p of this collection
    model = _tiny_model()
    dataset = streaming_dataset(columns, model.query_tokenizer(), model.document_tokenizer(),
                                16, seed=1, epochs=2)
    batches = list(dataset)
    # 60 queries in 700 triples repeat often in a batch of 16: most batches still form
    assert len(batches) >= 0.8 * 2 * (700 // 16)
    for batch in batches:
        queries, documents = batch["query_ids"].numpy(), batch["document_ids"].numpy()
        assert len(set(queries)) == len(queries) == 16 and len(set(documents)) == 16
        text = model.document_tokenizer()([f"passage {documents[0]} about topic "
                                          f"{documents[0] % 7}"])
        width = int(np.sum(text["padding_mask"]))
        np.testing.assert_array_equal(batch["document"]["token_ids"][0][:width],
                                      text["token_ids"][0][:width])
        assert batch["hard_negatives"]["token_ids"].shape[:2] == (16, 1)
    with open(folder / "triples.tsv", "a") as handle:
        handle.write("1001\t5\t300\n")
    with pytest.raises(DataError, match=r"triples.tsv:701: negative passage id '300'"):
        triple_columns(str(folder / "triples.tsv"), collection, str(tmp_path / "cache"))
    (folder / "triples.tsv").write_text("".join(f"{q}\t{p}\t{n}\n" for q, p, n in triples))
    config = load_config(overrides={
        "data.path": str(folder), "data.format": "msmarco", "data.eval_split": "dev",
        "data.triples": str(folder / "triples.tsv"), "data.num_hard_negatives": 1,
        "model.tower": "small", "training.steps": 3, "training.global_batch_size": 8,
        "evaluation.zero_shot": False})
    run_training(config, str(tmp_path / "run"), verbose=0, log=lambda *a: None)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["fine_tuned"]["ndcg@10"] >= 0


@pytest.mark.parametrize("queries, examples, batch", [(5_000, 200_000, 64), (40, 2_000, 16)])
def test_vectorized_batch_order_never_repeats_a_key_in_a_batch(queries, examples, batch):
    """Checked batch by batch with Python sets: no query and no document twice, no example
    twice; with many queries every full batch is kept; with few (repeats everywhere) the
    dropped batches stay few; the same seed gives the same order, another seed another."""
    from samtone_tf.data.streaming import vectorized_batch_order

    rng = np.random.default_rng(3)
    query = rng.integers(0, queries, examples).astype(np.int32)
    document = (rng.integers(0, 10 * queries, queries).astype(np.int32))[query]
    order = vectorized_batch_order(query, document, batch, seed=7)
    assert order.shape[1] == batch and order.dtype == np.int32
    for row in order:
        assert len(set(query[row].tolist())) == batch
        assert len(set(document[row].tolist())) == batch
    assert len(np.unique(order)) == order.size
    kept = order.size / (examples // batch * batch)
    assert kept > (0.999 if queries == 5_000 else 0.9)
    np.testing.assert_array_equal(order, vectorized_batch_order(query, document, batch, 7))
    assert not np.array_equal(order, vectorized_batch_order(query, document, batch, 8))


@pytest.mark.parametrize("corpus_ids", [["7", "12", "3", "100"],  # numeric: binary search
                                        ["7", "012", "3", "x9"]])  # not canonical: strings
def test_triples_map_ids_to_rows_as_a_dict_does(tmp_path, corpus_ids):
    """Query index and corpus rows of every triple equal a Python dict lookup, whichever
    lookup the ids allow; "12" never matches a corpus id "012"."""
    from samtone_tf.data.common import Collection, Document
    from samtone_tf.data.triples import map_triples

    corpus = {i: Document("", f"text {i}") for i in corpus_ids}
    queries = {"5": "q five", "2": "q two"}
    collection = Collection(corpus, queries, {}, "train", str(tmp_path))
    triples = [("5", corpus_ids[0], corpus_ids[3]), ("2", corpus_ids[2], corpus_ids[1]),
               ("5", corpus_ids[1], corpus_ids[2])]
    path = tmp_path / "triples.tsv"
    path.write_text("".join("\t".join(t) + "\n" for t in triples))
    assert map_triples(str(path), collection, str(tmp_path / "out.int32")) == 3
    got = np.fromfile(tmp_path / "out.int32", np.int32).reshape(-1, 3)
    query_index = {q: i for i, q in enumerate(sorted(queries))}
    row = {d: i for i, d in enumerate(corpus_ids)}
    assert got.tolist() == [[query_index[q], row[p], row[n]] for q, p, n in triples]
    path.write_text("5\t12\t3\n")
    if "012" in corpus_ids:
        with pytest.raises(DataError, match=r"triples.tsv:1: positive passage id '12' is not"):
            map_triples(str(path), collection, str(tmp_path / "bad.int32"))
