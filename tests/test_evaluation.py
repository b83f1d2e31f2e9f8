"""Search and metrics against brute force and pytrec_eval."""

import os
import subprocess
import sys

import numpy as np
import pytest
import pytrec_eval

from samtone_tf.data.beir import load_beir
from samtone_tf.data.runs import write_trec_run
from samtone_tf.retrieval.bm25 import bm25_run
from samtone_tf.retrieval.metrics import evaluate_run
from samtone_tf.retrieval.search import exact_search, run_from_search
from samtone_tf.resources import scifact_path


@pytest.mark.parametrize("q_chunk,d_chunk,k", [(7, 13, 5), (64, 1000, 50), (3, 40, 200)])
def test_chunked_search_equals_full_matrix_top_k_with_ties(q_chunk, d_chunk, k):
    rng = np.random.default_rng(k)
    queries = rng.integers(-2, 3, size=(37, 6)).astype("float32")  # many exact ties
    documents = rng.integers(-2, 3, size=(150, 6)).astype("float32")
    scores, indices = exact_search(queries, documents, k=k, query_chunk=q_chunk,
                                   document_chunk=d_chunk)
    full = queries.astype(np.float64) @ documents.T.astype(np.float64)
    k = min(k, len(documents))
    # brute force, ties to the lower document index
    expected = np.stack([np.lexsort((np.arange(len(row)), -row))[:k] for row in full])
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-6)


def test_search_shape_error_prints_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        exact_search(np.zeros((2, 3)), np.zeros((4, 5)))


def test_search_memory_is_bounded_by_chunks():
    """2,000 × 1,000,000 scores would take 8 GB; chunked search must stay far below."""
    code = (
        "import resource, numpy as np\n"
        "from samtone_tf.retrieval import exact_search\n"
        "rng = np.random.default_rng(0)\n"
        "q = rng.standard_normal((2000, 16), dtype=np.float32)\n"
        "d = rng.standard_normal((1_000_000, 16), dtype=np.float32)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "s, i = exact_search(q, d, k=10, query_chunk=256, document_chunk=50_000)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "best = int(np.argmax(d[:50_000] @ q[0])) if i[0, 0] < 50_000 else -1\n"
        "print('RESULT', (after - before) // 1024, s.shape, best in (-1, int(i[0, 0])))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=os.path.dirname(os.path.dirname(__file__)))
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
    assert line, out.stderr[-2000:]
    growth_mb = int(line[0].split()[1])
    assert growth_mb < 1500, growth_mb  # vs 8,000 MB for the full matrix
    assert line[0].endswith("True")


def _trec_order(docs):
    return sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)


def _random_case(seed):
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.choice(60, size=rng.integers(1, 8), replace=False)
        qrels[qid] = {f"d{d}": int(rng.integers(0, 4)) for d in judged}
        if q % 9 == 0:
            continue  # query with no run at all
        retrieved = rng.choice(80, size=rng.integers(0, 120 if q % 2 else 30), replace=True)
        run[qid] = {f"d{d}": float(rng.integers(0, 5)) for d in retrieved}  # ties
    return qrels, run


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_pytrec_eval_on_random_runs_with_ties_and_gaps(seed):
    qrels, run = _random_case(seed)
    summary, per_query = evaluate_run(qrels, run)
    measures = {"ndcg_cut.10", "P.1", "recall.100", "map_cut.100", "ndcg_cut.3"}
    direct = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(
        {q: d for q, d in run.items() if d})
    for ours, theirs in (("ndcg@10", "ndcg_cut_10"), ("p@1", "P_1"), ("ndcg@3", "ndcg_cut_3"),
                         ("recall@100", "recall_100"), ("map@100", "map_cut_100")):
        mean = np.sum([direct[q][theirs] for q in direct]) / len(qrels)  # absent → 0
        assert summary[ours] == pytest.approx(mean, abs=1e-6), ours
    # MRR@10 by hand, trec_eval tie order (score desc, then doc id desc)
    mrr = []
    for qid, judged in qrels.items():
        ranked = [d for d, _ in _trec_order(run.get(qid, {}))][:10]
        hits = [i for i, d in enumerate(ranked) if judged.get(d, 0) > 0]
        mrr.append(1 / (hits[0] + 1) if hits else 0.0)
        assert per_query[qid]["mrr@10"] == pytest.approx(mrr[-1], abs=1e-9)
    assert summary["mrr@10"] == pytest.approx(np.mean(mrr), abs=1e-6)


def test_metrics_on_real_bm25_run_equal_pytrec_eval():
    collection = load_beir(scifact_path(), "test")
    run = bm25_run(collection, k=100)
    summary, _ = evaluate_run(collection.qrels, run)
    direct = pytrec_eval.RelevanceEvaluator(collection.qrels, {"ndcg_cut.10", "recall.100"}
                                            ).evaluate(run)
    for ours, theirs in (("ndcg@10", "ndcg_cut_10"), ("recall@100", "recall_100")):
        expected = np.sum([direct[q][theirs] for q in direct]) / len(collection.qrels)
        assert summary[ours] == pytest.approx(expected, abs=1e-6)
    # the BM25 floor in ../shared/data/README.md: scifact test nDCG@10 0.659
    assert abs(summary["ndcg@10"] - 0.659) <= 0.01, summary["ndcg@10"]


def test_ignore_identical_ids():
    qrels = {"1": {"1": 1, "2": 1}}
    run = {"1": {"1": 3.0, "2": 2.0}}
    assert evaluate_run(qrels, run)[0]["p@1"] == 1.0
    assert evaluate_run(qrels, run, ignore_identical_ids=True)[0]["p@1"] == 1.0
    assert evaluate_run(qrels, run, ignore_identical_ids=True)[0]["recall@100"] == 0.5
    scores, indices = np.array([[3.0, 2.0]]), np.array([[0, 1]])
    assert run_from_search(["1"], ["1", "2"], scores, indices, ignore_identical_ids=True) == {
        "1": {"2": 2.0}}


def test_trec_run_file_round_trips_through_pytrec_eval(tmp_path):
    qrels, run = _random_case(9)
    path = tmp_path / "run.trec"
    write_trec_run(run, str(path))
    parsed = {}
    for line in path.read_text().splitlines():
        qid, _, doc, rank, score, _ = line.split()
        parsed.setdefault(qid, {})[doc] = float(score)
    assert parsed == {q: d for q, d in run.items() if d}



def test_faiss_backend_equals_tf_backend():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(4)
    queries = rng.standard_normal((50, 32)).astype("float32")
    documents = rng.standard_normal((3000, 32)).astype("float32")
    tf_scores, tf_indices = exact_search(queries, documents, k=20, document_chunk=700)
    fa_scores, fa_indices = exact_search(queries, documents, k=20, backend="faiss")
    np.testing.assert_array_equal(tf_indices, fa_indices)
    np.testing.assert_allclose(tf_scores, fa_scores, rtol=1e-5, atol=1e-5)


def test_corpus_embedding_cache_is_keyed_by_fingerprint_and_texts(tmp_path):
    from samtone_tf.retrieval.corpus import encode_corpus

    class Counting:
        calls = 0

        def encode_documents(self, texts, batch_size=64):
            Counting.calls += 1
            return np.array([[len(t), 1.0] for t in texts], "float32")

    model, texts = Counting(), ["a", "bb", "ccc"]
    first = encode_corpus(model, texts, cache_dir=str(tmp_path), fingerprint="m1",
                          progress=False)
    again = encode_corpus(model, texts, cache_dir=str(tmp_path), fingerprint="m1",
                          progress=False)
    assert Counting.calls == 1
    np.testing.assert_array_equal(first, again)
    encode_corpus(model, texts, cache_dir=str(tmp_path), fingerprint="m2", progress=False)
    encode_corpus(model, texts[:2] + ["cc"], cache_dir=str(tmp_path), fingerprint="m1",
                  progress=False)
    assert Counting.calls == 3


class _Fixed:
    """An encoder with given document/query embeddings (by text)."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def encode_documents(self, texts, batch_size=64):
        self.calls += 1
        return np.array([self.table[t] for t in texts], "float32")

    encode_queries = encode_documents


def _tiny_collection():
    from samtone_tf.data.beir import BeirCollection, Document

    corpus = {f"d{i}": Document("", f"doc {i}") for i in range(4)}
    return BeirCollection(corpus, {"q1": "query 1"}, {"q1": {"d2": 1}}, "test", "tiny")


def test_nan_embeddings_are_refused_not_scored():
    """Earlier: NaN document embeddings scored recall@100 = 1.0 with exit 0."""
    from samtone_tf.retrieval.corpus import NonFiniteEmbeddingsError
    from samtone_tf.retrieval.evaluation import evaluate_model

    table = {f"doc {i}": [1.0, float(i)] for i in range(4)}
    table["doc 2"] = [float("nan"), 0.0]
    table["query 1"] = [1.0, 0.0]
    with pytest.raises(NonFiniteEmbeddingsError, match="1 of 4 document embeddings hold "
                                                       "NaN/Inf \\(first: id 'd2'\\)"):
        evaluate_model(_Fixed(table), _tiny_collection())


def test_empty_evaluation_is_an_error_not_nan():
    from samtone_tf.data.beir import BeirCollection
    from samtone_tf.retrieval.evaluation import evaluate_model

    with pytest.raises(ValueError, match="no judged query"):
        evaluate_run({}, {"q": {"d": 1.0}})
    empty = BeirCollection({}, {}, {"q": {"d": 1}}, "test", "empty")
    with pytest.raises(ValueError, match="the corpus is empty"):
        evaluate_model(_Fixed({}), empty)


@pytest.mark.parametrize("damage", ["shorter", "reordered", "nan", "float64", "wider"])
def test_a_damaged_cache_file_is_rebuilt_with_a_warning(tmp_path, damage):
    """Earlier: a shorter or reordered cache file was used as it was, changing the
    metrics with exit 0."""
    from samtone_tf.retrieval.corpus import encode_corpus

    texts = ["a", "bb", "ccc", "dddd"]
    model = _Fixed({t: [float(len(t)), 1.0] for t in texts})
    first = encode_corpus(model, texts, cache_dir=str(tmp_path), fingerprint="m",
                          progress=False)
    (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".npy"]
    array = np.load(path)
    array = {"shorter": array[:3], "reordered": array[::-1], "float64": array.astype("float64"),
             "nan": np.where(array == 4.0, np.nan, array).astype("float32"),
             "wider": np.concatenate([array, array], 1)}[damage]
    np.save(path, array)
    with pytest.warns(UserWarning, match="embedding cache .*re-encoding"):
        again = encode_corpus(model, texts, cache_dir=str(tmp_path), fingerprint="m",
                              progress=False)
    np.testing.assert_array_equal(again, first)
    assert model.calls == 2
    np.testing.assert_array_equal(np.load(path), first)  # rewritten, then trusted again
    encode_corpus(model, texts, cache_dir=str(tmp_path), fingerprint="m", progress=False)
    assert model.calls == 2


def test_cache_of_a_savedmodel_follows_a_reexport_with_other_lengths(tmp_path):
    """Earlier: the fingerprint of a reloaded SavedModel was its path and weights, so a
    re-export with other max lengths reused stale vectors."""
    from samtone_tf.retrieval.corpus import encode_corpus, model_fingerprint
    from samtone_tf.export.saved_model import SavedModelEncoder, export_saved_model
    from samtone_tf.models.dual_encoder import DualEncoder
    from tests.helpers.builders import tiny_spec

    import keras

    keras.utils.set_random_seed(3)
    spec = tiny_spec(vocab_size=256, max_length=64)
    model = DualEncoder(spec, query_max_length=8, document_max_length=4)
    texts = ["one two three four five six seven", "alpha beta gamma delta epsilon"]
    path = str(tmp_path / "savedmodel")
    export_saved_model(model, path)
    short = SavedModelEncoder(path)
    cached = encode_corpus(short, texts, cache_dir=str(tmp_path / "cache"),
                           fingerprint=model_fingerprint(short), progress=False)
    model.document_max_length = 16
    model._tokenizers.clear()
    export_saved_model(model, path, overwrite=True)
    longer = SavedModelEncoder(path)
    fresh = longer.encode_documents(texts)
    assert not np.allclose(fresh, cached)  # the lengths matter for these texts
    got = encode_corpus(longer, texts, cache_dir=str(tmp_path / "cache"),
                        fingerprint=model_fingerprint(longer), progress=False)
    np.testing.assert_allclose(got, fresh, atol=1e-6)
