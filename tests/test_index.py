"""The retrieval SavedModel (samtone_tf.retrieval.index): reloaded with plain TensorFlow in a
fresh process, its search equals ``samtone eval``'s ranking and metrics; quantized
indexes equal a NumPy statement of their scoring."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from samtone_tf import DualEncoder
from samtone_tf.data.beir import load_beir
from samtone_tf.data.common import Collection
from samtone_tf.retrieval.corpus import encode_corpus
from samtone_tf.retrieval.evaluation import evaluate_model
from samtone_tf.retrieval.metrics import evaluate_run
from samtone_tf.retrieval.index import build_index
from samtone_tf.retrieval.quantization import quantize, truncate
from samtone_tf.resources import scifact_path
from tests.helpers.builders import tiny_spec

SEARCH_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the tokenizer ops)
assert "samtone_tf" not in sys.modules
path, queries_file, out = sys.argv[1:4]
ks = [int(k) for k in sys.argv[4:]]
queries = json.load(open(queries_file))
loaded = tf.saved_model.load(path)
assert "samtone_tf" not in sys.modules
result = {}
for k in ks:
    found = loaded.signatures["search"](texts=tf.constant(queries), k=tf.constant(k))
    result[str(k)] = {"ids": found["ids"].numpy().astype(str).tolist(),
                      "scores": found["scores"].numpy().tolist()}
json.dump(result, open(out, "w"))
"""


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return DualEncoder(tiny_spec(vocab_size=2000, hidden_dim=32, intermediate_dim=64,
                                 max_length=64), architecture="ade")


def _search(tmp_path, index, queries, ks):
    queries_file, out = tmp_path / "queries.json", tmp_path / "found.json"
    queries_file.write_text(json.dumps(queries))
    script = tmp_path / "search.py"
    script.write_text(SEARCH_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    done = subprocess.run([sys.executable, str(script), str(index), str(queries_file), str(out),
                           *map(str, ks)], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())


def _subset(collection, docs):
    keep = list(collection.corpus)[:docs]
    qrels = {q: {d: r for d, r in rel.items() if d in keep} for q, rel in collection.qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if rel}
    return Collection(corpus={d: collection.corpus[d] for d in keep},
                      queries={q: collection.queries[q] for q in qrels}, qrels=qrels,
                      split=collection.split, path=collection.path)


def test_search_through_the_reloaded_artifact_equals_samtone_eval(tmp_path):
    model = _model()
    collection = load_beir(scifact_path(), "test")
    info = build_index(model, collection, str(tmp_path / "index"), progress=False)
    assert info["documents"] == len(collection.corpus) and info["max_k"] == 1000
    query_ids = list(collection.queries)
    found = _search(tmp_path, tmp_path / "index", [collection.queries[q] for q in query_ids],
                    [1, 10, 100])
    run = {q: dict(zip(found["100"]["ids"][i], found["100"]["scores"][i]))
           for i, q in enumerate(query_ids)}
    summary, _ = evaluate_run(collection.qrels, run)
    want, _, want_run = evaluate_model(model, collection, k=100)
    for key in ("ndcg@10", "mrr@10", "p@1", "recall@100", "map@100"):
        assert summary[key] == pytest.approx(want[key], abs=1e-6), key
    agree = np.mean([list(run[q]) == list(want_run[q]) for q in query_ids])
    assert agree > 0.95  # the rest differ only where two scores tie within float error
    for i in range(len(query_ids)):  # one loaded model, k chosen per call
        assert found["1"]["ids"][i] == found["100"]["ids"][i][:1]
        assert found["10"]["ids"][i] == found["100"]["ids"][i][:10]
        assert found["100"]["scores"][i] == sorted(found["100"]["scores"][i], reverse=True)
    show = subprocess.run(["saved_model_cli", "show", "--dir", str(tmp_path / "index"),
                           "--tag_set", "serve", "--signature_def", "search"],
                          capture_output=True, text=True)
    if show.returncode == 0:  # the CLI ships with tensorflow; check what it lists
        for needle in ("texts", "DT_STRING", "'k'", "DT_INT32", "ids", "scores", "DT_FLOAT"):
            assert needle in show.stdout, show.stdout


@pytest.mark.parametrize("quantization", ["none", "int8", "binary", "binary+int8"])
def test_quantized_search_equals_numpy(tmp_path, quantization):
    """Stored in blocks of at most 37 rows (11 variables per stored array, as an MS MARCO
    index is in blocks of 262,144): scores, re-scoring gathers and ids cross the blocks."""
    model = _model(1)
    collection = _subset(load_beir(scifact_path(), "test"), 400)
    rescore_vectors = "int8" if quantization == "binary+int8" else "sign"
    info = build_index(model, collection, str(tmp_path / "ix"),
                       quantization=quantization.split("+")[0], dims=24, rescore=5,
                       progress=False, rescore_vectors=rescore_vectors, block_rows=37)
    # ceil(400 / 37) = 11 blocks, the first 400 % 11 = 4 one row longer ("div" partition)
    assert info["blocks"] == [37] * 4 + [36] * 7
    # float32 is 400 × 24 × 4 bytes: int8 is 4× smaller (+ scales), binary 32×
    assert info["vector_bytes"] == {"none": 400 * 24 * 4, "int8": 400 * 24 + 24 * 4,
                                    "binary": 400 * 3,
                                    "binary+int8": 400 * 3 + 400 * 24 + 24 * 4}[quantization]
    query_ids = list(collection.queries)[:40]
    texts = [collection.queries[q] for q in query_ids]
    found = _search(tmp_path, tmp_path / "ix", texts, [10])["10"]
    docs = truncate(encode_corpus(model, [d.full_text for d in collection.corpus.values()],
                                  progress=False), 24).astype(np.float64)
    queries = truncate(model.encode_queries(texts), 24).astype(np.float64)
    doc_ids = np.array(list(collection.corpus))
    if quantization in ("none", "int8"):
        if quantization == "none":
            scores = queries @ docs.T
        else:
            stored = quantize(docs, "int8")
            scores = queries @ (stored["codes"] * stored["scales"].astype(np.float64)).T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    else:
        hamming = ((queries > 0)[:, None, :] != (docs > 0)[None, :, :]).sum(axis=2)
        candidates = np.argsort(hamming, axis=1, kind="stable")[:, :50]
        if quantization == "binary":
            vectors = np.where(docs > 0, 1.0, -1.0) / np.sqrt(24)
        else:
            stored = quantize(docs, "int8")
            vectors = stored["codes"] * stored["scales"].astype(np.float64)
        exact = np.einsum("bd,bcd->bc", queries, vectors[candidates])
        order = np.take_along_axis(candidates, np.argsort(-exact, axis=1, kind="stable")[:, :10],
                                   axis=1)
        scores = queries @ vectors.T
    want_scores = np.take_along_axis(scores, order, axis=1)
    np.testing.assert_allclose(found["scores"], want_scores, atol=1e-5)
    same = np.mean([found["ids"][i] == doc_ids[order[i]].tolist() for i in range(len(texts))])
    assert same >= 0.9  # rows that differ hold ties within float error (scores equal above)


@pytest.mark.parametrize("rows, block_rows, shard_rows", [(400, 37, 50), (10, 4, 3),
                                                          (5, 100, 5)])
def test_index_blocks_cut_the_shards_as_embedding_lookup_partitions_them(rows, block_rows,
                                                                         shard_rows):
    import tensorflow as tf

    from samtone_tf.retrieval.index import block_sizes, index_blocks

    rng = np.random.default_rng(0)
    whole = rng.standard_normal((rows, 6)).astype(np.float32)
    parts = [whole[at:at + shard_rows] for at in range(0, rows, shard_rows)]
    sizes = block_sizes(rows, block_rows)
    assert sum(sizes) == rows and max(sizes) <= block_rows
    assert len(sizes) == -(-rows // block_rows)
    blocks = [block["vectors"] for block in index_blocks(parts, sizes, "none")]
    assert parts == []  # every shard released into the blocks
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    ids = rng.integers(0, rows, size=50)  # TensorFlow's "div" lookup finds the same rows
    looked_up = tf.nn.embedding_lookup([tf.constant(b) for b in blocks], ids).numpy()
    np.testing.assert_array_equal(looked_up, whole[ids])


def test_index_from_a_savedmodel_and_refusals(tmp_path):
    from samtone_tf.cli.main import main
    from samtone_tf.export.saved_model import export_saved_model

    model = _model(2)
    export_saved_model(model, str(tmp_path / "encoder"))
    collection = _subset(load_beir(scifact_path(), "test"), 120)
    from samtone_tf.export.saved_model import SavedModelEncoder

    build_index(SavedModelEncoder(str(tmp_path / "encoder")), collection,
                str(tmp_path / "ix"), progress=False, max_k=50)
    texts = [collection.queries[q] for q in list(collection.queries)[:5]]
    found = _search(tmp_path, tmp_path / "ix", texts, [50])["50"]
    want = model.encode_queries(texts) @ encode_corpus(
        model, [d.full_text for d in collection.corpus.values()], progress=False).T
    np.testing.assert_allclose(found["scores"], -np.sort(-want, axis=1)[:, :50], atol=1e-5)
    with pytest.raises(FileExistsError):
        build_index(model, collection, str(tmp_path / "ix"), progress=False)
    with pytest.raises(FileExistsError, match="not an index"):
        build_index(model, collection, str(tmp_path / "encoder"), overwrite=True,
                    progress=False)
    assert (tmp_path / "encoder" / "saved_model.pb").exists()
    assert main(["index", "--model", str(tmp_path / "encoder"), "--output",
                 str(tmp_path / "x"), "--dims", "999"]) == 2
    assert not (tmp_path / "x").exists()
    # --block-rows reaches the stored blocks: the shipped SciFact's 5,183 documents in
    # ceil(5183 / 2000) = 3 blocks, cut as embedding_lookup's "div" partition; the
    # search equals the one-block build's
    assert main(["index", "--model", str(tmp_path / "encoder"), "--output",
                 str(tmp_path / "blocked"), "--block-rows", "2000", "--max-k", "20"]) == 0
    assert main(["index", "--model", str(tmp_path / "encoder"), "--output",
                 str(tmp_path / "whole"), "--max-k", "20"]) == 0
    with open(tmp_path / "blocked" / "assets" / "samtone_index.json") as handle:
        assert json.load(handle)["blocks"] == [1728, 1728, 1727]
    blocked, whole = (_search(tmp_path, tmp_path / name, texts, [20])["20"]
                      for name in ("blocked", "whole"))
    assert blocked["ids"] == whole["ids"]
    np.testing.assert_allclose(blocked["scores"], whole["scores"], atol=1e-6)


def _count_document_encodings(model, monkeypatch, kill_at=None):
    """Records the size of each ``encode_documents`` call on ``model``; with
    ``kill_at``, that call (1-based) raises KeyboardInterrupt instead (a kill)."""
    calls, real = [], model.encode_documents

    def counting(texts, batch_size=64):
        calls.append(len(texts))
        if kill_at is not None and len(calls) == kill_at:
            raise KeyboardInterrupt
        return real(texts, batch_size=batch_size)

    monkeypatch.setattr(model, "encode_documents", counting)
    return calls


def test_a_killed_index_resumes_from_its_shards(tmp_path, monkeypatch):
    model = _model(3)
    collection = _subset(load_beir(scifact_path(), "test"), 250)
    _count_document_encodings(model, monkeypatch, kill_at=3)  # the kill, in shard 3
    with pytest.raises(KeyboardInterrupt):
        build_index(model, collection, str(tmp_path / "ix"), shard_size=100, progress=False)
    assert not (tmp_path / "ix").exists()
    # two shards finished: their rows are in the memory-mapped file, each with its record
    assert len(list((tmp_path / "ix.shards").glob("*/rows-*.json"))) == 2
    monkeypatch.undo()
    calls = _count_document_encodings(model, monkeypatch)
    build_index(model, collection, str(tmp_path / "ix"), shard_size=100, progress=False)
    assert calls == [50]  # only the unfinished shard was encoded again
    assert not (tmp_path / "ix.shards").exists()


def test_a_shared_shard_dir_encodes_the_corpus_once(tmp_path, monkeypatch):
    model = _model(4)
    collection = _subset(load_beir(scifact_path(), "test"), 80)
    calls = _count_document_encodings(model, monkeypatch)
    shards = tmp_path / "shards"
    first = build_index(model, collection, str(tmp_path / "f32"), shard_dir=str(shards),
                        progress=False)
    second = build_index(model, collection, str(tmp_path / "int8"), shard_dir=str(shards),
                         quantization="int8", progress=False)
    assert calls == [80]  # the second index read the verified cache
    assert shards.is_dir() and first["documents"] == second["documents"] == 80
    want, _, _ = evaluate_model(model, collection, cache_dir=str(shards))
    assert calls == [80]  # samtone eval's cache is the same cache
    assert want["ndcg@10"] >= 0


def test_encoding_roles_follow_tensorflow_chief_convention():
    """Slot 0 is the task TensorFlow calls the chief (multi_worker_util.is_chief), every
    chief/worker task gets its own slot, and other task types are refused."""
    from tensorflow.python.distribute import multi_worker_util

    from samtone_tf.devices import encoding_role

    assert encoding_role("") == (0, 1, "local")
    for cluster in ({"worker": ["a:1", "b:1", "c:1"]},
                    {"chief": ["c:1"], "worker": ["a:1", "b:1"]}):
        tasks = [(t, i) for t in ("chief", "worker") for i in range(len(cluster.get(t, [])))]
        slots = []
        for task_type, index in tasks:
            slot, count, name = encoding_role(json.dumps(
                {"cluster": cluster, "task": {"type": task_type, "index": index}}))
            assert count == 3 and name == f"{task_type}-{index}"
            assert (slot == 0) == multi_worker_util.is_chief(cluster, task_type, index)
            slots.append(slot)
        assert sorted(slots) == [0, 1, 2]
    with pytest.raises(ValueError, match="ps-0 is not a chief or worker"):
        encoding_role({"cluster": {"worker": ["a:1", "b:1"], "ps": ["p:1"]},
                       "task": {"type": "ps", "index": 0}})


def test_the_chief_waits_for_the_other_shards_and_names_a_missing_one(tmp_path, monkeypatch):
    """Slot 0 of 2 encodes shards 1 and 3 only; with slot 1's shard 2 absent it fails
    naming it; once slot 1 has written it, the chief's index equals one process's."""
    model = _model(6)
    collection = _subset(load_beir(scifact_path(), "test"), 70)
    calls = _count_document_encodings(model, monkeypatch)
    shards = str(tmp_path / "shards")
    with pytest.raises(TimeoutError, match=r"shard 2 of 3 \(slot 1 of 2\)"):
        build_index(model, collection, str(tmp_path / "ix"), shard_size=30, shard_dir=shards,
                    role=(0, 2), wait_timeout=0.5, progress=False)
    assert calls == [30, 10] and not (tmp_path / "ix").exists()
    other = build_index(model, collection, str(tmp_path / "ix"), shard_size=30,
                        shard_dir=shards, role=(1, 2), progress=False)
    assert other == {"task": "slot-1", "shards": [2]} and calls == [30, 10, 30]
    assert not (tmp_path / "ix").exists()
    build_index(model, collection, str(tmp_path / "ix"), shard_size=30, shard_dir=shards,
                role=(0, 2), progress=False)
    assert calls == [30, 10, 30]  # the chief read all three shards from the cache
    build_index(model, collection, str(tmp_path / "one"), shard_size=30, progress=False)
    texts = [collection.queries[q] for q in list(collection.queries)[:6]]
    assert _search(tmp_path, tmp_path / "ix", texts, [10]) == _search(
        tmp_path, tmp_path / "one", texts, [10])
