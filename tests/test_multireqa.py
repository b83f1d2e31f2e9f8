"""The MultiReQA converter reproduces ../shared/data/reqa-squad on an MRQA excerpt.

The MRQA SQuAD dev file is not available offline; tests/data/multireqa_excerpt holds an
MRQA-format excerpt of the first two contexts (see make_excerpt.py there for how it was
made and checked), in the format of the real files.
"""

import gzip
import json
import os

import pytest

from samtone_tf.data.beir import DataError, load_beir
from samtone_tf.data.multireqa import convert_multireqa, write_beir
from tests.shared import shared

HERE = os.path.dirname(os.path.abspath(__file__))
EXCERPT = os.path.join(HERE, "data", "multireqa_excerpt")


def test_converter_reproduces_reqa_squad_for_the_excerpt(tmp_path):
    with pytest.warns(UserWarning, match="1 question\\(s\\) left out"):
        converted = convert_multireqa(os.path.join(EXCERPT, "SQuAD.jsonl.gz"),
                                      os.path.join(EXCERPT, "candidates.json.gz"))
    expected = load_beir(shared("reqa-squad"), "test")
    in_excerpt = {d for d in expected.corpus if d.startswith(("c0_s", "c1_s"))}
    assert set(converted.corpus) == in_excerpt
    for doc_id in in_excerpt:
        assert converted.corpus[doc_id] == expected.corpus[doc_id]
    expected_qrels = {q: docs for q, docs in expected.qrels.items() if set(docs) & in_excerpt}
    assert converted.qrels == expected_qrels
    assert converted.queries == {q: expected.queries[q] for q in expected_qrels}
    assert "f" * 32 not in converted.queries  # answer across a sentence boundary
    # round trip through the BEIR writer and reader
    write_beir(converted, str(tmp_path))
    again = load_beir(str(tmp_path), "test")
    assert again.corpus == converted.corpus and again.qrels == converted.qrels


def test_unknown_candidate_group_names_the_record(tmp_path):
    bad = tmp_path / "candidates.json.gz"
    with gzip.open(bad, "wt") as handle:
        handle.write(json.dumps({"candidate_id": "SQuAD_nope/_0", "response_start": 0,
                                 "response_end": 3}) + "\n")
    with pytest.raises(DataError, match="candidates.json.gz:1: .* names questions of no context"):
        convert_multireqa(os.path.join(EXCERPT, "SQuAD.jsonl.gz"), str(bad))


def test_malformed_mrqa_line_names_file_and_line(tmp_path):
    bad = tmp_path / "SQuAD.jsonl"
    bad.write_text('{"header": {}}\n{"context": "x", "qas": []}\n{"context": \n')
    with pytest.raises(DataError, match=r"SQuAD.jsonl:3: malformed JSON"):
        convert_multireqa(str(bad), os.path.join(EXCERPT, "candidates.json.gz"))
