"""load_collection: every format gives the same collection as its own reader."""

import os

import pytest

from samtone_tf.errors import ConfigError
from samtone_tf.runs.config import load_config
from samtone_tf.data.beir import load_beir
from samtone_tf.data.loaders import load_collection
from tests.shared import shared

HERE = os.path.dirname(os.path.abspath(__file__))


def test_multireqa_folder_format():
    with pytest.warns(UserWarning):
        collection = load_collection(os.path.join(HERE, "data", "multireqa_excerpt"), "test",
                                     "multireqa")
    expected = load_beir(shared("reqa-squad"), "test")
    for query_id, docs in collection.qrels.items():
        assert expected.qrels[query_id] == docs


def test_msmarco_format(tmp_path):
    (tmp_path / "collection.tsv").write_text("1\tpassage one\n2\tpassage two\n")
    (tmp_path / "queries.dev.tsv").write_text("7\tquestion\n")
    (tmp_path / "qrels.dev.tsv").write_text("7 0 2 1\n")
    collection = load_collection(str(tmp_path), "dev", "msmarco")
    assert collection.qrels == {"7": {"2": 1}} and collection.corpus["1"].text == "passage one"


def test_tfds_format_equals_the_beir_folder(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    from samtone_tf.data import tfds_builders

    manual = shared("cranfield")
    for config in ("cranfield-pairs", "cranfield-corpus"):
        tfds_builders.Beir(config=config, data_dir=str(tmp_path)).download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    via_tfds = load_collection("beir/cranfield", "test", "tfds")
    with pytest.warns(UserWarning):
        expected = load_beir(manual, "test")
    assert via_tfds.qrels == expected.qrels and via_tfds.queries == expected.queries
    assert via_tfds.corpus == expected.corpus


def test_unknown_format():
    with pytest.raises(ValueError, match="data format must be one of"):
        load_collection("x", "test", "csv")
    with pytest.raises(ConfigError, match="data.format must be one of"):
        load_config(None, {"data.format": "csv"})
