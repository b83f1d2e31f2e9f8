"""Hard-negative mining (samtone_tf.retrieval.mining) against an independent NumPy float64
statement of the rule, and its run file through the TREC reader into batches."""

import numpy as np
import pytest

from samtone_tf.retrieval import mining
from samtone_tf.cli.main import main
from samtone_tf.data.common import Collection, Document
from samtone_tf.data.runs import mine_hard_negatives, read_trec_run, write_trec_run


def _reference(scores, doc_ids, query_ids, qrels, num, start, end, absolute, relative, maximum):
    """The rule written out: rank by score desc, then corpus order; window; skip
    positives; margins against the lowest-scoring positive; first ``num``."""
    out = {}
    for row, query_id in enumerate(query_ids):
        positives = [j for j, d in enumerate(doc_ids) if qrels[query_id].get(d, 0) > 0]
        s_plus = min(scores[row, j] for j in positives)
        order = sorted(range(len(doc_ids)), key=lambda j: (-scores[row, j], j))
        kept = []
        for j in order[start:end]:
            s = scores[row, j]
            if j in positives or (absolute is not None and s > s_plus - absolute) or (
                    relative is not None and s > relative * s_plus) or (
                    maximum is not None and s > maximum):
                continue
            kept.append((doc_ids[j], s))
            if len(kept) == num:
                break
        out[query_id] = kept
    return out


def _constructed(seed=0, queries=12, docs=60, dim=3):
    """Small-integer embeddings: float32 inner products are exact, and many tie."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-2, 3, size=(queries, dim)).astype("float32")
    d = rng.integers(-2, 3, size=(docs, dim)).astype("float32")
    query_ids = [f"q{i:02d}" for i in range(queries)]
    doc_ids = [f"d{j:03d}" for j in range(docs)]
    qrels = {qid: {doc_ids[j]: 1 for j in rng.choice(docs, size=rng.integers(1, 4),
                                                       replace=False)} for qid in query_ids}
    qrels[query_ids[0]][doc_ids[5]] = 0  # judged non-relevant: a candidate like any other
    return q, d, query_ids, doc_ids, qrels


@pytest.mark.parametrize("num,window,absolute,relative,maximum", [
    (5, (0, None), None, None, None),
    (4, (3, 30), None, None, None),
    (6, (0, 40), 1.0, None, None),
    (6, (2, None), None, 0.5, None),
    (3, (0, None), None, None, 0.0),
    (8, (1, 50), 0.5, 0.9, 2.0),
    (60, (0, None), 0.0, None, None),  # asks for more than pass: fewer kept
])
def test_kept_negatives_equal_the_numpy_rule(num, window, absolute, relative, maximum):
    q, d, query_ids, doc_ids, qrels = _constructed()
    negatives, report = mining.mine_from_embeddings(
        q, d, query_ids, doc_ids, qrels, num=num, window=window, absolute_margin=absolute,
        relative_margin=relative, max_score=maximum)
    want = _reference(q.astype(np.float64) @ d.T.astype(np.float64), doc_ids, query_ids, qrels,
                      num, window[0], window[1], absolute, relative, maximum)
    assert negatives.keys() == want.keys()
    for query_id in want:
        assert [doc for doc, _ in negatives[query_id]] == [doc for doc, _ in want[query_id]]
        np.testing.assert_array_equal([s for _, s in negatives[query_id]],
                                      [s for _, s in want[query_id]])
    assert report["kept"] == sum(len(v) for v in want.values())
    assert report["queries_with_fewer_than_num"] == sum(len(v) < num for v in want.values())
    if absolute is None and relative is None and maximum is None:
        assert report["removed"]["absolute_margin"] == report["removed"]["max_score"] == 0


def test_filter_counts_follow_the_first_failing_rule():
    q = np.array([[1.0, 0.0]], "float32")
    d = np.array([[1, 0], [0.95, 0.05], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0, 1]], "float32")
    negatives, report = mining.mine_from_embeddings(
        q, d, ["q"], list("pabcde"), {"q": {"p": 1}}, num=2, absolute_margin=0.1,
        relative_margin=0.7, max_score=0.5)
    assert [doc for doc, _ in negatives["q"]] == ["d", "e"]
    assert report["removed"] == {"positive": 1, "absolute_margin": 1, "relative_margin": 1,
                                 "max_score": 1}


def test_the_lowest_scoring_positive_sets_the_margin():
    q = np.array([[1.0, 0.0]], "float32")
    d = np.array([[1.0, 0.0], [0.5, 0.5], [0.7, 0.3], [0.2, 0.8]], "float32")
    negatives, _ = mining.mine_from_embeddings(q, d, ["q"], ["p1", "p2", "a", "b"],
                                               {"q": {"p1": 1, "p2": 2}}, num=3,
                                               absolute_margin=0.0)
    assert [doc for doc, _ in negatives["q"]] == ["b"]  # a (0.7) beats p2 (0.5)


def test_run_file_round_trips_into_training_batches(tmp_path):
    from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
    from samtone_tf.tokenizers.in_graph import HashingTokenizer

    q, d, query_ids, doc_ids, qrels = _constructed(seed=1)
    negatives, _ = mining.mine_from_embeddings(q, d, query_ids, doc_ids, qrels, num=3,
                                               window=(1, None))
    path = str(tmp_path / "mined.trec")
    write_trec_run(mining.as_run(negatives), path, tag="samtone-mine")
    first = open(path).readline().split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "samtone-mine"
    mined = mine_hard_negatives(read_trec_run(path), qrels, count=3)
    assert mined == {k: [doc for doc, _ in v] for k, v in negatives.items()}
    collection = Collection(
        corpus={doc: Document("", f"text of {doc}") for doc in doc_ids},
        queries={qid: f"question {qid}" for qid in query_ids}, qrels=qrels, split="train",
        path="constructed")
    examples = examples_from_qrels(collection, mined, 3)
    tokenizer = HashingTokenizer(max_length=8)
    batch = next(iter(training_dataset(examples, tokenizer, tokenizer, 4, seed=0)))
    assert tuple(batch["hard_negatives"]["token_ids"].shape[:2]) == (4, 3)
    for example in examples:
        assert list(example.hard_negative_ids) == mined[example.query_id]
        assert example.hard_negatives == tuple(f"text of {doc}" for doc in mined[example.query_id])
    want = tokenizer([f"text of {doc}" for doc in mined[examples[0].query_id]])
    assert batch["hard_negatives"]["token_ids"].shape[2] >= want["token_ids"].shape[1]


def test_bm25_mining_equals_the_rule_on_bm25_scores():
    from samtone_tf.data.beir import load_beir
    from samtone_tf.retrieval.bm25 import bm25_scores
    from samtone_tf.resources import scifact_path

    collection = load_beir(scifact_path(), "train")
    small = Collection(corpus=collection.corpus,
                       queries={k: collection.queries[k] for k in list(collection.qrels)[:25]},
                       qrels={k: collection.qrels[k] for k in list(collection.qrels)[:25]},
                       split="train", path=collection.path)
    negatives, report = mining.mine_bm25(small, num=4, window=(2, 60), absolute_margin=1.0)
    query_ids, doc_ids, scores = bm25_scores(small)
    want = _reference(scores, doc_ids, query_ids, small.qrels, 4, 2, 60, 1.0, None, None)
    assert {k: [d for d, _ in v] for k, v in negatives.items()} == \
        {k: [d for d, _ in v] for k, v in want.items()}
    assert report["source"] == "bm25" and report["removed"]["absolute_margin"] > 0


def test_mine_command_writes_a_run_and_prints_the_counts(tmp_path, capsys):
    output = tmp_path / "bm25.trec"
    assert main(["mine", "--bm25", "--output", str(output), "--num", "2",
                 "--range", "5-50", "--absolute-margin", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "removed: positive" in printed and "absolute_margin" in printed
    run = read_trec_run(str(output))
    assert run and all(len(docs) <= 2 for docs in run.values())


@pytest.mark.parametrize("argv,needle", [
    (["mine", "--output", "x.trec"], "exactly one of --model and --bm25"),
    (["mine", "--bm25", "--output", "x.trec", "--range", "10-5"], "--range"),
    (["mine", "--bm25", "--output", "x.trec", "--range", "a-b"], "--range"),
])
def test_mine_command_rejects_bad_flags_in_one_line(argv, needle, capsys, tmp_path,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.trec").exists()


def _bm25_reference(docs, queries, k1=0.9, b=0.4):
    """Lucene's BM25 from its definition, float64, one query term at a time."""
    import math
    import re

    tokens = [re.findall(r"\w+", d.lower()) for d in docs]
    mean = sum(map(len, tokens)) / len(tokens)
    scores = np.zeros((len(queries), len(docs)))
    for i, query in enumerate(queries):
        for term in re.findall(r"\w+", query.lower()):  # a repeated term counts again
            n = sum(term in t for t in tokens)
            idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
            for j, t in enumerate(tokens):
                tf = t.count(term)
                scores[i, j] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / mean))
    return scores


def test_bm25_scores_and_the_blocked_top_k_equal_the_definition(monkeypatch):
    from samtone_tf.retrieval import bm25

    docs = ["the cat sat on the mat", "a dog", "the cat sat on the mat", "cat cat dog mat",
            "nothing here at all", "Dog and cat: friends?", "mat", "the the the"]
    queries = ["cat on mat", "dog dog", "the", "zebra", "Cat friends"]
    collection = Collection({f"d{i}": Document("", d) for i, d in enumerate(docs)},
                            {f"q{i}": q for i, q in enumerate(queries)}, {}, "test", "inline")
    want = _bm25_reference(docs, queries)
    _, _, got = bm25.bm25_scores(collection)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    monkeypatch.setattr(bm25, "BLOCK_QUERIES", 2)  # blocks of two queries
    run = bm25.bm25_run(collection, k=3)
    for i, query_id in enumerate(collection.queries):
        top = np.argsort(-want[i], kind="stable")[:3]  # ties: corpus order
        assert list(run[query_id]) == [f"d{j}" for j in top]
        np.testing.assert_allclose(list(run[query_id].values()), want[i, top], atol=1e-12)


def test_bm25_index_built_in_small_chunks_equals_one_chunk():
    """The two streaming passes give the same postings whatever the chunk size (terms
    first seen in a later chunk, a chunk with no token), and the sparse per-query scores
    equal the definition."""
    from samtone_tf.retrieval.bm25 import BM25Index

    docs = ["the cat sat", "", "zebra cat", "...", "mat mat mat the", "Ünïcode zebra", "a"]
    corpus = {f"d{i}": Document("", d) for i, d in enumerate(docs)}
    whole, pieces = BM25Index.build(corpus), BM25Index.build(corpus, chunk=2)
    assert whole.vocabulary == pieces.vocabulary
    for name in BM25Index.ARRAYS:
        np.testing.assert_array_equal(getattr(whole, name), getattr(pieces, name))
    want = _bm25_reference(docs, ["zebra the", "ünïcode", "nothing"])
    matrix = whole.query_terms(["zebra the", "ünïcode", "nothing"])
    for row in range(3):
        span = slice(matrix.indptr[row], matrix.indptr[row + 1])
        rows, scores = whole.scores(matrix.indices[span], matrix.data[span])
        dense = np.zeros(len(docs))
        dense[rows] = scores
        np.testing.assert_allclose(dense, want[row], rtol=0, atol=1e-12)
        assert (scores > 0).all()  # a matched document always scores above 0
        top, values = whole.top_k(rows, scores, 5)  # zeros follow in corpus order
        assert list(top) == list(np.argsort(-want[row], kind="stable")[:5])


def test_bm25_hard_negatives_equal_mining_the_top_100_run():
    """The job's ``data.hard_negatives: bm25`` (one query's top 100 at a time) equals the
    run-based rule on the whole BM25 run."""
    from samtone_tf.data.beir import load_beir
    from samtone_tf.resources import scifact_path
    from samtone_tf.retrieval.bm25 import bm25_hard_negatives, bm25_run

    collection = load_beir(scifact_path(), "test")
    want = mine_hard_negatives(bm25_run(collection, k=100), collection.qrels, 3)
    assert bm25_hard_negatives(collection, 3, depth=100) == want
