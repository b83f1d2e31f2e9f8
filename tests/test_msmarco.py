"""MS MARCO readers, TREC runs and hard-negative mining (on small files in the real formats)."""

import gzip

import numpy as np
import pytest

from samtone_tf.data.beir import DataError, load_beir
from samtone_tf.data.msmarco import load_msmarco, read_id_triples, read_text_triples
from samtone_tf.data.runs import mine_hard_negatives, read_trec_run, write_trec_run
from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
from samtone_tf.retrieval.bm25 import bm25_run
from samtone_tf.resources import scifact_path
from samtone_tf.tokenizers.in_graph import HashingTokenizer


def _folder(tmp_path, qrels=b"10 0 1 1\n11\t0\t2\t1\n"):
    with gzip.open(tmp_path / "collection.tsv.gz", "wb") as handle:
        handle.write(b"1\tthe first passage\n2\tthe second passage\n3\ta third one\n")
    (tmp_path / "queries.dev.tsv").write_bytes(b"10\tfirst?\n11\tsecond?\n12\tunjudged\n")
    (tmp_path / "qrels.dev.tsv").write_bytes(qrels)
    return tmp_path


def test_load_msmarco(tmp_path):
    collection = load_msmarco(str(_folder(tmp_path)), "dev")
    assert len(collection.corpus) == 3 and collection.corpus["2"].text == "the second passage"
    assert collection.queries == {"10": "first?", "11": "second?"}
    assert collection.qrels == {"10": {"1": 1}, "11": {"2": 1}}


@pytest.mark.parametrize("qrels,match", [
    (b"10 0 9 1\n", r"qrels.dev.tsv:1: passage id '9' is unknown"),
    (b"10 0 1 1\n10 0 2\n", r"qrels.dev.tsv:2: expected 4"),
    (b"10 0 1 x\n", r"qrels.dev.tsv:1: relevance 'x'"),
])
def test_bad_qrels(tmp_path, qrels, match):
    with pytest.raises(DataError, match=match):
        load_msmarco(str(_folder(tmp_path, qrels)), "dev")


def test_triples(tmp_path):
    (tmp_path / "qidpidtriples.train.full.tsv").write_text("10\t1\t3\n11\t2\t3\n")
    assert list(read_id_triples(str(tmp_path / "qidpidtriples.train.full.tsv"))) == [
        ("10", "1", "3"), ("11", "2", "3")]
    (tmp_path / "triples.train.small.tsv").write_text("q\tpos\tneg\nq2\t\tneg\n")
    with pytest.raises(DataError, match="triples.train.small.tsv:2: empty text"):
        list(read_text_triples(str(tmp_path / "triples.train.small.tsv")))


def test_mined_hard_negatives_exclude_positives_and_follow_the_run(tmp_path):
    collection = load_beir(scifact_path(), "train")
    run = bm25_run(collection, k=20)
    path = tmp_path / "bm25.trec"
    write_trec_run(run, str(path))
    reread = read_trec_run(str(path))
    assert reread.keys() == run.keys()
    negatives = mine_hard_negatives(reread, collection.qrels, count=2, skip_top=1)
    for qid, mined in negatives.items():
        assert len(mined) == 2
        positives = {d for d, r in collection.qrels[qid].items() if r > 0}
        assert not set(mined) & positives
        ranked = [d for d, _ in sorted(run[qid].items(), key=lambda x: (-x[1], x[0]))
                  if d not in positives]
        assert mined == ranked[1:3]


def test_training_batches_carry_hard_negatives():
    collection = load_beir(scifact_path(), "train")
    negatives = mine_hard_negatives(bm25_run(collection, k=10), collection.qrels, count=2)
    examples = examples_from_qrels(collection, negatives, num_hard_negatives=2)
    tokenizer = HashingTokenizer(512, 12)
    batch = next(iter(training_dataset(examples, tokenizer, tokenizer, 8, seed=0)))
    assert batch["hard_negatives"]["token_ids"].shape[:2] == (8, 2)
    assert batch["hard_negative_ids"].shape == (8, 2)
    # a hard negative's id equals a positive's id exactly when they are the same document
    docs = {e.document_id for e in examples} | {d for e in examples for d in e.hard_negative_ids}
    assert len(docs) > len({e.document_id for e in examples})
    assert np.issubdtype(batch["hard_negative_ids"].numpy().dtype, np.integer)
