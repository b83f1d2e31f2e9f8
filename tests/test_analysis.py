"""Separation probe and similarity statistics on constructed embeddings."""

import numpy as np
import pytest

from samtone_tf.runs.plots import plot_similarities, plot_tsne
from samtone_tf.training.alignment import similarity_statistics, tower_separation


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_probe_separates_two_clouds_and_not_one():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((200, 16))
    offset = np.zeros(16)
    offset[0] = 8.0
    apart = tower_separation(_unit(base), _unit(rng.standard_normal((200, 16)) + offset),
                             tsne=False)
    mixed = tower_separation(_unit(base), _unit(rng.standard_normal((200, 16))), tsne=False)
    assert apart["probe_accuracy"] > 0.95
    assert abs(mixed["probe_accuracy"] - 0.5) < 0.1


def test_similarity_statistics_match_numpy():
    rng = np.random.default_rng(1)
    q, d = _unit(rng.standard_normal((5, 4))), _unit(rng.standard_normal((5, 4)))
    corpus = _unit(rng.standard_normal((30, 4)))
    stats = similarity_statistics(q, d, corpus)
    full = q @ q.T
    assert sorted(stats["query_query"]) == pytest.approx(sorted(full[~np.eye(5, dtype=bool)]))
    assert stats["top1"] == pytest.approx((q @ corpus.T).max(axis=1), rel=1e-6)
    assert stats["positive"] == pytest.approx(np.sum(q * d, axis=1))


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(2)
    q, d = _unit(rng.standard_normal((40, 8))), _unit(rng.standard_normal((40, 8)))
    result = tower_separation(q, d)
    assert result["tsne"].shape == (80, 2)
    plot_tsne({"a": result, "b": result}, str(tmp_path / "tsne.png"))
    stats = similarity_statistics(q, d, q)
    plot_similarities({"a": stats, "b": stats}, str(tmp_path / "sim.png"))
    for name in ("tsne.png", "sim.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _RecordingEncoder:
    """Maps each text to a fixed random vector (two clusters: queries and documents) and
    records the batch sizes it was asked for."""

    def __init__(self):
        self.batch_sizes = []

    def _vectors(self, texts, offset):
        rows = [np.random.default_rng(sum(map(ord, t))).normal(size=8) + offset for t in texts]
        return np.asarray(rows, "float32")

    def encode_queries(self, texts, batch_size=64):
        self.batch_sizes.append(batch_size)
        return self._vectors(texts, 0.0)

    def encode_documents(self, texts, batch_size=64):
        self.batch_sizes.append(batch_size)
        return self._vectors(texts, 3.0)


def test_write_plots_encodes_at_the_given_batch_size_and_reports_the_separation(tmp_path):
    from samtone_tf.training.alignment import sample_pairs, tower_separation
    from samtone_tf.runs.plots import write_plots
    from samtone_tf.data.common import Collection, Document

    corpus = {f"d{i}": Document(f"title {i}", f"text number {i}") for i in range(30)}
    queries = {f"q{i}": f"question {i}?" for i in range(30)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(30)}
    collection = Collection(corpus, queries, qrels, "test", str(tmp_path))
    encoder = _RecordingEncoder()
    separation = write_plots(encoder, collection, str(tmp_path / "plots"), seed=3, n=20,
                             batch_size=5)
    assert encoder.batch_sizes == [5, 5]  # neither write_plots' default nor encode_*'s
    pairs = sample_pairs(collection, 20, 3)
    expected = tower_separation(encoder._vectors([q for q, _ in pairs], 0.0),
                                encoder._vectors([d for _, d in pairs], 3.0), 3)
    assert separation["probe_accuracy"] == expected["probe_accuracy"]
    assert (tmp_path / "plots" / "tsne.png").exists()
    assert (tmp_path / "plots" / "separation.json").exists()


def test_analyze_encodes_at_the_given_batch_size(tmp_path, monkeypatch, small_scifact):
    import json

    from samtone_tf.cli import analyze as commands
    from samtone_tf.training.alignment import sample_pairs
    from samtone_tf.cli.main import main
    from samtone_tf.data.beir import load_beir
    data = small_scifact
    encoder = _RecordingEncoder()
    monkeypatch.setattr(commands, "load_encoder", lambda path: encoder)
    assert main(["analyze", "run", "--data", str(data), "--n", "20", "--batch-size", "7",
                 "--output", str(tmp_path / "out")]) == 0
    # pairs (2 calls), then the corpus and the queries (encode_corpus), all at 7 rows
    assert len(encoder.batch_sizes) > 3 and set(encoder.batch_sizes) == {7}
    pairs = sample_pairs(load_beir(str(data), "test"), 20, 0)
    expected = tower_separation(encoder._vectors([q for q, _ in pairs], 0.0),
                                encoder._vectors([d for _, d in pairs], 3.0), 0)
    summary = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert summary["run"]["probe_accuracy"] == expected["probe_accuracy"]
