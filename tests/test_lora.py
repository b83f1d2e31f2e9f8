"""LoRA adapters (samtone_tf.layers.lora) against the merged-kernel formula in NumPy, the
frozen base, and the saved forms (.keras, SavedModel); cross-replica and gradient-cache
steps with adapters are in tests/test_distribute.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.errors import ConfigError
from samtone_tf.losses.samtone import SamToNeLoss
from samtone_tf.models import DualEncoder
from tests.helpers.builders import contrastive_batch, tiny_spec

TEXTS = ["a short query", "another text about proteins and cells", "x"]


def _trained(architecture="sde", rank=4, alpha=None, steps=3):
    keras.utils.set_random_seed(0)
    spec = tiny_spec(vocab_size=64, num_layers=2, max_length=16)
    model = DualEncoder(spec, architecture=architecture, lora_rank=rank, lora_alpha=alpha)
    model.compile(keras.optimizers.Adam(1e-2), loss=SamToNeLoss(0.05))
    base = {v.path: v.numpy() for v in model.weights}
    batch = contrastive_batch(np.random.default_rng(1), 8, 6, 8)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(8).repeat(steps)
    model.fit(dataset, verbose=0)
    return spec, model, base


@pytest.mark.parametrize("architecture, alpha", [("sde", None), ("ade", 16)])
def test_lora_trains_only_adapters_and_equals_the_merged_kernels(architecture, alpha):
    """Only the adapters change; the base is bit-identical; the adapted towers equal a
    plain model whose query/value kernels are W + (α / r) · A B computed in NumPy."""
    spec, model, base = _trained(architecture, rank=4, alpha=alpha)
    adapters = [v for v in model.trainable_variables]
    assert adapters and all(v.path.endswith(("lora_kernel_a", "lora_kernel_b"))
                            for v in adapters)
    towers = 1 if architecture == "sde" else 2
    assert len(adapters) == towers * 2 * 2 * 2  # towers × layers × (query, value) × (A, B)
    for variable in model.weights:
        if not variable.path.endswith(("lora_kernel_a", "lora_kernel_b")):
            assert np.array_equal(variable.numpy(), base[variable.path]), variable.path
    moved = [v for v in adapters if v.path.endswith("lora_kernel_b")]
    assert all(np.abs(v.numpy()).max() > 0 for v in moved)  # B starts at zero

    keras.utils.set_random_seed(0)
    plain = DualEncoder(spec, architecture=architecture)
    scale = (alpha or 4) / 4
    values = {v.path: v.numpy() for v in model.weights}
    for variable in plain.weights:
        value = values[variable.path]
        prefix = variable.path.rsplit("/", 1)[0]
        if variable.path.endswith("/kernel") and prefix + "/lora_kernel_a" in values:
            a = values[prefix + "/lora_kernel_a"].astype(np.float64)
            b = values[prefix + "/lora_kernel_b"].astype(np.float64)
            value = (value.astype(np.float64) + scale * np.tensordot(a, b, axes=1)).astype(
                np.float32)
        variable.assign(value)
    for side in ("queries", "documents"):
        got = getattr(model, f"encode_{side}")(TEXTS)
        want = getattr(plain, f"encode_{side}")(TEXTS)
        np.testing.assert_allclose(got, want, atol=2e-6)


def _saved_forms_encode_as_trained(model, tmp_path):
    """The .keras file and the exported SavedModel encode as ``model`` does; returns
    (the reloaded model, the loaded SavedModel)."""
    from samtone_tf.export.saved_model import export_saved_model

    want_q, want_d = model.encode_queries(TEXTS), model.encode_documents(TEXTS)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.encode_queries(TEXTS), want_q, atol=2e-6)
    np.testing.assert_allclose(loaded.encode_documents(TEXTS), want_d, atol=2e-6)
    export_saved_model(model, str(tmp_path / "saved"))
    module = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(module.encode_query(tf.constant(TEXTS))["embeddings"], want_q,
                               atol=2e-6)
    np.testing.assert_allclose(module.encode_document(tf.constant(TEXTS))["embeddings"],
                               want_d, atol=2e-6)
    return loaded, module


@pytest.mark.slow  # saves and exports
def test_lora_model_round_trips_through_keras_and_savedmodel(tmp_path):
    """The .keras file (Keras' merged kernels, fresh zero adapters) and the exported
    SavedModel (computing with the adapters) encode as the trained model does."""
    _, model, _ = _trained("ade", rank=2)
    loaded, _ = _saved_forms_encode_as_trained(model, tmp_path)
    assert loaded.lora_rank == 2 and len(loaded.trainable_variables) == len(
        model.trainable_variables)


@pytest.mark.parametrize("rank, alpha, match", [(0, None, "lora_rank"), ("4", None, "lora_rank"),
                                                (True, None, "lora_rank"),
                                                (None, 8, "lora_alpha needs lora_rank"),
                                                (4, -1, "lora_alpha")])
def test_bad_lora_arguments_are_refused(rank, alpha, match):
    with pytest.raises(ValueError, match=match):
        DualEncoder(tiny_spec(), lora_rank=rank, lora_alpha=alpha)


def test_lora_in_the_job_config():
    from samtone_tf.runs.config import load_config

    config = load_config(overrides={"model.lora_rank": 8, "model.lora_alpha": 16})
    assert config["model"]["lora_rank"] == 8
    with pytest.raises(ConfigError, match="model.lora_rank"):
        load_config(overrides={"model.lora_rank": 0})


def test_lora_needs_multi_head_attention():
    from samtone_tf.models import T5Encoder

    with pytest.raises(ValueError, match="MultiHeadAttention"):
        DualEncoder(T5Encoder(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
                              max_length=16), lora_rank=2)


def _merged_plain(spec, values, side, scale):
    """A plain SDE model whose query/value kernels are W + scale · A_side B_side (NumPy)."""
    keras.utils.set_random_seed(0)
    plain = DualEncoder(spec)
    for variable in plain.weights:
        path = variable.path.replace("tower/", f"{side}_tower/", 1)
        path = next(p for p in values if p.endswith(path.split("/", 1)[1]))
        value = values[path]
        prefix = path.rsplit("/", 1)[0]
        if path.endswith("/kernel") and prefix + f"/lora_{side}_a" in values:
            a = values[prefix + f"/lora_{side}_a"].astype(np.float64)
            b = values[prefix + f"/lora_{side}_b"].astype(np.float64)
            value = (value.astype(np.float64) + scale * np.tensordot(a, b, axes=1)).astype(
                np.float32)
        variable.assign(value)
    return plain


def test_ade_lora_shares_one_frozen_base_and_each_tower_equals_its_merged_kernels():
    """ADE-LoRA: one copy of the base (as many base weights as SDE), both adapter pairs
    train, the base stays bit-identical, and each tower equals a plain model whose
    kernels are W + (α / r) · A_side B_side in NumPy; the towers differ."""
    spec, model, base = _trained("ade-lora", rank=4, alpha=8)
    keras.utils.set_random_seed(0)
    sde = DualEncoder(spec)
    frozen = [v for v in model.weights if "/lora_" not in v.path and "_tower/" in v.path]
    assert len(frozen) == len([v for v in sde.weights if v.path.startswith("tower/")])
    assert sorted(v.path.rsplit("/", 1)[-1] for v in model.trainable_variables) == sorted(
        [f"lora_{s}_{p}" for s in ("query", "document") for p in "ab"] * 2 * 2)
    for variable in frozen:
        assert np.array_equal(variable.numpy(), base[variable.path]), variable.path
    values = {v.path: v.numpy() for v in model.weights}
    for side in ("query", "document"):
        plain = _merged_plain(spec, values, side, 8 / 4)
        method = "encode_queries" if side == "query" else "encode_documents"
        np.testing.assert_allclose(getattr(model, method)(TEXTS),
                                   getattr(plain, method)(TEXTS), atol=2e-6)
    assert not np.allclose(model.encode_queries(TEXTS), model.encode_documents(TEXTS),
                           atol=1e-3)


@pytest.mark.slow  # saves and exports
def test_ade_lora_round_trips_through_keras_and_savedmodel(tmp_path):
    """The .keras file keeps base and both adapter pairs; the SavedModel holds the base
    once and each signature computes with its side's adapters."""
    _, model, _ = _trained("ade-lora", rank=2)
    loaded, module = _saved_forms_encode_as_trained(model, tmp_path)
    assert loaded.architecture == "ade-lora"
    for a, b in zip(loaded.weights, model.weights):
        assert a.path == b.path and np.array_equal(a.numpy(), b.numpy()), a.path
    embeddings = [v for v in module.variables if "token_embedding" in v.name]
    assert len(embeddings) == 1  # one base in the artifact


def test_ade_lora_needs_a_rank():
    with pytest.raises(ValueError, match="lora_rank must be set for the ade-lora"):
        DualEncoder(tiny_spec(), architecture="ade-lora")
