"""The gradient cache: one cached step equals the uncached step on the same batch.

The reference is Keras' own full-batch step, with dropout off and on: dropout masks are
keyed on (seed, step, side, example, layer) (samtone_tf.layers.keyed_dropout), so the
chunking draws no other masks, and a cache whose chunks got other keys fails the
comparison. 2 logical CPU replicas and 2 workers: tests/test_distribute.py,
test_multiworker.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from samtone_tf import DualEncoder, SamToNeLoss
from samtone_tf.models import gradient_cache
from tests.helpers.builders import contrastive_batch, tiny_spec

LOSSES = {
    "standard": dict(same_tower="none"),
    "samtone_query": dict(same_tower="query"),
    "both_symmetric_trainable_tau": dict(same_tower="both", symmetric=True,
                                         trainable_temperature=True),
    "joint": dict(same_tower="query", joint=True),
}


def _spec(dropout):
    return tiny_spec(max_length=10, dropout=dropout)


def _batch(rows=6, hard=True, seed=0):
    return contrastive_batch(np.random.default_rng(seed), rows, 7, 10,
                             negatives=2 if hard else 0, padded_tail=3, duplicates=True)


def _models(architecture, loss_kwargs, dropout, chunk, jit_compile=False):
    made = []
    for cache in (chunk, None):
        keras.utils.set_random_seed(11)
        model = DualEncoder(_spec(dropout), architecture=architecture, projection_dim=8)
        model.compile(keras.optimizers.SGD(0.5), loss=SamToNeLoss(0.05, **loss_kwargs),
                      gradient_cache_chunk_size=cache,
                      jit_compile=jit_compile and cache is not None)
        made.append(model)
    cached, reference = made
    reference.set_weights(cached.get_weights())
    for a, b in zip(gradient_cache._seed_states(cached), gradient_cache._seed_states(reference)):
        b.assign(a)
    return cached, reference


def _fit_one(model, batch):
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(len(batch["query_ids"]),
                                                              drop_remainder=True)
    return model.fit(dataset, verbose=0).history


def _update_error(cached, reference, start):
    got = np.concatenate([(np.asarray(w) - s).ravel()
                          for w, s in zip(cached.trainable_weights, start)])
    want = np.concatenate([(np.asarray(w) - s).ravel()
                           for w, s in zip(reference.trainable_weights, start)])
    assert np.linalg.norm(want) > 0.1  # the step really moved the weights
    return np.linalg.norm(got - want) / np.linalg.norm(want)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("architecture", ["sde", "ade", "ade-spl", "ade-fte"])
def test_cached_step_equals_keras_full_batch_step_dropout_off(architecture, loss):
    batch = _batch()
    cached, reference = _models(architecture, LOSSES[loss], 0.0, chunk=4)  # chunks 4 + 2
    start = [np.array(w) for w in cached.trainable_weights]
    history = _fit_one(cached, batch)
    want = _fit_one(reference, batch)
    assert _update_error(cached, reference, start) <= 1e-5
    assert history["loss"][0] == pytest.approx(want["loss"][0], rel=1e-6)
    assert history["in_batch_accuracy"] == want["in_batch_accuracy"]


@pytest.mark.parametrize("architecture", ["sde", "ade"])
def test_cached_step_with_matryoshka_and_sign_bit_losses_equals_full_batch_step(architecture):
    """The job's default step on CPU is the cache; with ``loss.matryoshka_dims`` and
    ``loss.binary_weight`` (the sign's straight-through gradient) it equals Keras'
    full-batch step, dropout off."""
    batch = _batch()
    loss = dict(same_tower="query", matryoshka_dims=[8, 4], binary_weight=0.5)
    cached, reference = _models(architecture, loss, 0.0, chunk=4)
    start = [np.array(w) for w in cached.trainable_weights]
    history = _fit_one(cached, batch)
    want = _fit_one(reference, batch)
    assert _update_error(cached, reference, start) <= 1e-5
    assert history["loss"][0] == pytest.approx(want["loss"][0], rel=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("architecture", ["sde", "ade-ste"])
def test_cached_step_equals_uncached_step_with_dropout_on(architecture, loss):
    batch = _batch()
    cached, reference = _models(architecture, LOSSES[loss], 0.2, chunk=4)
    start = [np.array(w) for w in cached.trainable_weights]
    _fit_one(cached, batch)
    _fit_one(reference, batch)
    assert _update_error(cached, reference, start) <= 1e-5
    if "trainable_temperature" in LOSSES[loss]:
        tau = [np.asarray(m.loss_fn.log_temperature) for m in (cached, reference)]
        assert tau[0] != pytest.approx(np.log(0.05)) and tau[0] == pytest.approx(tau[1], rel=1e-6)


@pytest.mark.parametrize("loss", ["samtone_query", "both_symmetric_trainable_tau"])
def test_cached_step_compiles_with_xla_and_equals_the_plain_step(loss):
    """jit_compile=True: every chunk has a static shape (the last one padded), so XLA
    compiles the cached step; its update equals Keras' full-batch step (dropout off)."""
    batch = _batch(hard=False)
    # 6 rows: chunks of 4 + 2 (+ 2 padding rows)
    cached, reference = _models("ade", LOSSES[loss], 0.0, chunk=4, jit_compile=True)
    start = [np.array(w) for w in cached.trainable_weights]
    _fit_one(cached, batch)
    _fit_one(reference, batch)
    assert cached.jit_compile is True
    assert _update_error(cached, reference, start) <= 1e-5


def test_a_cache_whose_chunks_draw_other_masks_is_caught(monkeypatch):
    """Chunks keyed as if each were the batch's first rows draw other dropout masks: a
    different step, which the comparison above must see. (Pass 3 reusing pass 1's
    embeddings without re-running the tower gives no weight gradient at all: the update
    check sees that.)"""
    batch = _batch()
    cached, reference = _models("sde", LOSSES["samtone_query"], 0.2, chunk=4)
    start = [np.array(w) for w in cached.trainable_weights]
    real = gradient_cache._keyed
    monkeypatch.setattr(gradient_cache, "_keyed",
                        lambda model, key, tokens, index, size: real(model, key, tokens, 0, size))
    _fit_one(cached, batch)
    _fit_one(reference, batch)
    assert _update_error(cached, reference, start) > 1e-3


def test_chunk_size_is_validated_and_saved():
    model = DualEncoder(_spec(0.0))
    with pytest.raises(ValueError, match="positive integer"):
        model.compile(loss=SamToNeLoss(), gradient_cache_chunk_size=0)
    model.compile(loss=SamToNeLoss(), gradient_cache_chunk_size=16)
    assert model.get_compile_config()["gradient_cache_chunk_size"] == 16


def test_the_job_config_and_flag_turn_it_on():
    from samtone_tf.cli.parser import build_parser as _parser
    from samtone_tf.runs.config import load_config
    from samtone_tf.training.distribute import get_strategy
    from samtone_tf.runs.job import build_model

    args = _parser().parse_args(["train", "--tower", "small", "--gradient-cache-chunk-size", "8"])
    overrides = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    config = load_config(None, overrides)
    assert config.training.gradient_cache_chunk_size == 8
    model = build_model(config, get_strategy("default"), log=lambda *a: None)
    assert model.gradient_cache_chunk_size == 8


def test_resumed_cached_training_equals_uninterrupted(tmp_path):
    """fit_resumable (what `samtone train` runs) with the cache, interrupted after the
    step-2 checkpoint and resumed in a fresh model, ends with the uninterrupted weights."""
    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
    from samtone_tf.training.resumable import fit_resumable
    from samtone_tf.resources import scifact_path
    from samtone_tf.tokenizers.in_graph import HashingTokenizer

    tokenizer = HashingTokenizer(64, 10)
    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    dataset = training_dataset(examples, tokenizer, tokenizer, 8, seed=3)

    def model():
        keras.utils.set_random_seed(5)
        m = DualEncoder(_spec(0.1), architecture="ade-spl", projection_dim=8)
        m.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05),
                  gradient_cache_chunk_size=3)
        return m

    class Crash(Exception):
        pass

    def crash_at_three(step):
        if step == 3:
            raise Crash()

    reference = model()
    whole = fit_resumable(reference, dataset, 4, str(tmp_path / "a"), checkpoint_every=2,
                          verbose=0, log=lambda *a: None)
    interrupted = model()
    with pytest.raises(Crash):
        fit_resumable(interrupted, dataset, 4, str(tmp_path / "b"), checkpoint_every=2,
                      verbose=0, on_step=crash_at_three, log=lambda *a: None)
    resumed = model()
    history = fit_resumable(resumed, dataset, 4, str(tmp_path / "b"), checkpoint_every=2,
                            verbose=0, log=lambda *a: None)
    for got, want in zip(resumed.weights, reference.weights):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
    np.testing.assert_allclose(history["loss"], whole["loss"], rtol=1e-4)


@pytest.mark.parametrize("architecture", ["sde", "ade"])
def test_cached_remat_and_plain_steps_draw_the_same_dropout(architecture):
    """Dropout 0.1, SamToNe symmetric on both sides with hard negatives: the gradient
    cache (chunks of 2), remat and the plain step give the same update (the memory
    policy is a memory knob only). Two replicas: tests/test_distribute.py."""
    from tests.helpers.keyed_dropout_step import one_step_updates

    updates = one_step_updates(architecture)
    plain = updates["plain"]
    assert np.linalg.norm(plain) > 0.1
    for name in ("cached", "remat", "cached+remat"):
        assert np.linalg.norm(updates[name] - plain) / np.linalg.norm(plain) <= 1e-5, name
