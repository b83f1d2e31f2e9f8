"""BEIR reader: counts of the real collections and an error for each malformed input."""

import gzip
import os

import pytest

from samtone_tf.data.beir import DataError, load_beir
from samtone_tf.resources import scifact_path
from tests.shared import shared



@pytest.mark.parametrize("folder,split,counts", [
    ("scifact", "train", (5183, 809, 919)),
    ("scifact", "test", (5183, 300, 339)),
    ("reqa-squad", "test", (10642, 10485, 11449)),
    ("cranfield", "test", (1400, 225, 1612)),
])
def test_counts_equal_the_readmes(folder, split, counts):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collection = load_beir(shared(folder), split)
    assert (len(collection.corpus), len(collection.queries), collection.num_judgements) == counts
    empty = [str(w.message) for w in caught if "empty title and text" in str(w.message)]
    # Cranfield documents 471 and 995 are empty in the original: kept, and said so
    assert bool(empty) == (folder == "cranfield")
    if empty:
        assert "'471'" in empty[0] and "'995'" in empty[0]


def test_shipped_scifact_equals_shared_copy():
    shipped = load_beir(scifact_path(), "test")
    copy = load_beir(shared("scifact"), "test")
    assert shipped.corpus == copy.corpus and shipped.qrels == copy.qrels
    assert shipped.queries == copy.queries


def _write(folder, corpus, queries, qrels, gz=False):
    os.makedirs(folder / "qrels", exist_ok=True)
    if gz:
        with gzip.open(folder / "corpus.jsonl.gz", "wb") as handle:
            handle.write(corpus)
    else:
        (folder / "corpus.jsonl").write_bytes(corpus)
    (folder / "queries.jsonl").write_bytes(queries)
    (folder / "qrels" / "test.tsv").write_bytes(qrels)


GOOD_CORPUS = b'{"_id": "d1", "title": "T", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
GOOD_QUERIES = b'{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n'
GOOD_QRELS = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"


def test_good_folder_and_gzip(tmp_path):
    _write(tmp_path, GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS, gz=True)
    collection = load_beir(str(tmp_path), "test")
    assert collection.corpus["d1"].full_text == "T one"
    assert collection.corpus["d2"].full_text == "two"  # no leading space without a title
    assert collection.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


@pytest.mark.parametrize("corpus,queries,qrels,match", [
    (GOOD_CORPUS + b'{"_id": "d3", "text": "x"\n', GOOD_QUERIES, GOOD_QRELS,
     r"corpus.jsonl:3: malformed JSON"),
    (GOOD_CORPUS + b'{"_id": "d3", "title": "x"}\n', GOOD_QUERIES, GOOD_QRELS,
     r"corpus.jsonl:3: missing field 'text'"),
    (GOOD_CORPUS, GOOD_QUERIES + b'{"_id": "q3", "text": "  "}\n', GOOD_QRELS,
     r"queries.jsonl:3: query 'q3' has an empty text"),
    (GOOD_CORPUS, GOOD_QUERIES + b'{"_id": "q3", "text": "caf\xe9"}\n', GOOD_QRELS,
     r"queries.jsonl:3: invalid UTF-8"),
    (GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + b"q1\td9\t1\n",
     r"test.tsv:4: document id 'd9' is not in the corpus"),
    (GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + b"q7\td1\t1\n",
     r"test.tsv:4: query id 'q7' is not in the queries"),
    (GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + b"q1 d1 1\n", r"test.tsv:4: expected"),
    (GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + b"q1\td1\tyes\n", r"test.tsv:4: score 'yes'"),
    (GOOD_CORPUS + b'{"_id": "d1", "text": "again"}\n', GOOD_QUERIES, GOOD_QRELS,
     r"corpus.jsonl:3: duplicate document id 'd1'"),
    (GOOD_CORPUS + b'["d3", "x"]\n', GOOD_QUERIES, GOOD_QRELS,
     r"corpus.jsonl:3: expected a JSON object"),
    # the same pair judged twice: earlier the last line silently won
    (GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + b"q1\td1\t0\n",
     r"test.tsv:4: query 'q1' and document 'd1' are judged twice \(first at line 2\)"),
    # a lone surrogate smuggled in by a JSON escape: earlier it failed later, far away
    (GOOD_CORPUS, GOOD_QUERIES + b'{"_id": "q3", "text": "bad \\ud800 text"}\n', GOOD_QRELS,
     r"queries.jsonl:3: field 'text' holds an undecodable character \(U\+D800"),
    (GOOD_CORPUS + b'{"_id": "d3", "title": "\\udfff", "text": "x"}\n', GOOD_QUERIES,
     GOOD_QRELS, r"corpus.jsonl:3: field 'title' holds an undecodable character"),
    # nothing to evaluate: earlier metrics became NaN
    (GOOD_CORPUS, GOOD_QUERIES, b"query-id\tcorpus-id\tscore\n",
     r"test.tsv: split 'test' has no judged query"),
    (b"", GOOD_QUERIES, GOOD_QRELS, r"corpus.jsonl: the corpus holds no document"),
])
def test_malformed_input_names_file_and_line(tmp_path, corpus, queries, qrels, match):
    _write(tmp_path, corpus, queries, qrels)
    with pytest.raises(DataError, match=match):
        load_beir(str(tmp_path), "test")


def test_utf8_byte_order_marks_are_ignored(tmp_path):
    """Earlier: a BOM broke the qrels header ('\\ufeffquery-id' is not a header) and
    the first JSON line of the corpus and queries."""
    bom = b"\xef\xbb\xbf"
    _write(tmp_path, bom + GOOD_CORPUS, bom + GOOD_QUERIES, bom + GOOD_QRELS)
    collection = load_beir(str(tmp_path), "test")
    assert collection.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert collection.corpus["d1"].full_text == "T one" and collection.queries["q1"] == "first"


def test_skip_mode_warns_with_counts(tmp_path):
    _write(tmp_path, GOOD_CORPUS, GOOD_QUERIES,
           GOOD_QRELS + b"q1\td9\t1\nq7\td1\t1\nq8\td2\t1\n")
    with pytest.warns(UserWarning, match="skipped 2 qrels line.* unknown query id and 1 "):
        collection = load_beir(str(tmp_path), "test", on_missing="skip")
    assert collection.num_judgements == 2


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_beir(str(tmp_path / "nope"))
    (tmp_path / "corpus.jsonl").write_bytes(GOOD_CORPUS)
    with pytest.raises(FileNotFoundError, match="queries.jsonl"):
        load_beir(str(tmp_path))
