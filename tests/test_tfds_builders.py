"""TFDS builders prepare from manual_dir and then load offline with download=False."""

import os

import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from samtone_tf.data import tfds_builders  # noqa: E402
from samtone_tf.data.beir import load_beir  # noqa: E402
from tests.shared import shared

HERE = os.path.dirname(os.path.abspath(__file__))


def _prepare(builder_class, config, manual_dir, data_dir):
    builder = builder_class(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir))
    return builder


def test_beir_cranfield_pairs_and_corpus_offline(tmp_path):
    manual = shared("cranfield")
    for config in ("cranfield-pairs", "cranfield-corpus"):
        _prepare(tfds_builders.Beir, config, manual, tmp_path)
    expected = load_beir(manual, "test")
    pairs = tfds.load("beir/cranfield-pairs", split="test", data_dir=str(tmp_path),
                      download=False)
    rows = list(pairs.as_numpy_iterator())
    assert len(rows) == expected.num_judgements == 1612
    first = rows[0]
    qid, did = first["query_id"].decode(), first["document_id"].decode()
    assert expected.qrels[qid][did] == first["relevance"]
    assert first["document"].decode() == expected.corpus[did].full_text
    corpus = tfds.load("beir/cranfield-corpus", split="corpus", data_dir=str(tmp_path),
                       download=False)
    assert sum(1 for _ in corpus) == 1400


def test_multireqa_builder_from_manual_dir(tmp_path):
    manual = os.path.join(HERE, "data", "multireqa_excerpt")
    _prepare(tfds_builders.MultiReqa, "squad-pairs", manual, tmp_path)
    rows = list(tfds.load("multi_reqa/squad-pairs", split="test", data_dir=str(tmp_path),
                          download=False).as_numpy_iterator())
    expected = load_beir(shared("reqa-squad"), "test")
    in_excerpt = {q: d for q, d in expected.qrels.items()
                  if any(x.startswith(("c0_s", "c1_s")) for x in d)}
    assert len(rows) == sum(len(d) for d in in_excerpt.values())


def test_msmarco_builder_from_manual_dir(tmp_path):
    manual = tmp_path / "msmarco"
    manual.mkdir()
    (manual / "collection.tsv").write_text("1\tfirst passage\n2\tsecond passage\n3\tthird\n")
    for split, rows in (("train", "10\tq ten\n11\tq eleven\n"), ("dev", "20\tq twenty\n")):
        (manual / f"queries.{split}.tsv").write_text(rows)
    (manual / "qrels.train.tsv").write_text("10 0 1 1\n11 0 2 1\n11 0 3 1\n")
    (manual / "qrels.dev.tsv").write_text("20\t0\t3\t1\n")
    _prepare(tfds_builders.MsMarcoPassage, "msmarco-pairs", str(manual), tmp_path / "data")
    train = list(tfds.load("ms_marco_passage/msmarco-pairs", split="train",
                           data_dir=str(tmp_path / "data"), download=False).as_numpy_iterator())
    assert sorted((r["query_id"].decode(), r["document_id"].decode()) for r in train) == [
        ("10", "1"), ("11", "2"), ("11", "3")]
    dev = list(tfds.load("ms_marco_passage/msmarco-pairs", split="dev",
                         data_dir=str(tmp_path / "data"), download=False).as_numpy_iterator())
    assert [r["document"].decode() for r in dev] == ["third"]
