"""DualEncoder: variable sharing per architecture, fit on real data, encoding."""

import keras
import numpy as np
import pytest

from samtone_tf.data.beir import load_beir
from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
from samtone_tf.losses.samtone import SamToNeLoss
from samtone_tf.models import ARCHITECTURES, DualEncoder
from samtone_tf.resources import scifact_path
from samtone_tf.tokenizers.in_graph import HashingTokenizer
from tests.helpers.builders import random_tokens, tiny_spec

TINY = tiny_spec(vocab_size=2048, hidden_dim=32, intermediate_dim=64, max_length=64)


def _ids(variables):
    return {id(v) for v in variables}


def _part_ids(tower):
    parts = {"embedding": _ids(tower.token_embedding.weights),
             "encoder": _ids(tower.encoder.weights),
             "projection": _ids(tower.projection.weights) if tower.projection else set()}
    return parts


@pytest.mark.parametrize("architecture,shared", [
    ("sde", {"embedding", "encoder", "projection"}),
    ("ade", set()),
    ("ade-ste", {"embedding"}),
    ("ade-fte", {"embedding"}),
    ("ade-spl", {"projection"}),
])
def test_architectures_share_exactly_their_parts(architecture, shared):
    model = DualEncoder(TINY, architecture=architecture, projection_dim=16)
    query, document = _part_ids(model.query_tower), _part_ids(model.document_tower)
    for part in ("embedding", "encoder", "projection"):
        assert query[part], part  # every part exists and has variables
        if part in shared:
            assert query[part] == document[part], part
        else:
            assert not query[part] & document[part], part
    all_query = _ids(model.query_tower.weights)
    all_document = _ids(model.document_tower.weights)
    expected_shared = set().union(*(query[p] for p in shared)) if shared else set()
    assert all_query & all_document == expected_shared
    # the model holds each variable once
    assert len(model.weights) == len(_ids(model.weights)) == len(all_query | all_document)
    embedding = model.query_tower.token_embedding.embeddings
    assert (id(embedding) in _ids(model.trainable_variables)) == (architecture != "ade-fte")


def test_ade_spl_without_projection_dim_projects_to_hidden_size():
    model = DualEncoder(TINY, architecture="ade-spl")
    assert model.query_tower.projection is model.document_tower.projection
    assert model.embedding_dim == TINY.hidden_dim


def test_unknown_architecture():
    with pytest.raises(ValueError, match="architecture must be one of"):
        DualEncoder(TINY, architecture="two-tower")


def _tokens(rng, n, length):
    return random_tokens(rng, (n, length), vocab=2048, low=2)


def test_fit_changes_frozen_embeddings_never_and_towers_as_shared():
    rng = np.random.default_rng(0)
    batch = {"query": _tokens(rng, 16, 8), "document": _tokens(rng, 16, 12)}
    for architecture in ARCHITECTURES:
        keras.utils.set_random_seed(1)
        lora = architecture == "ade-lora"  # frozen base, adapters train
        model = DualEncoder(TINY, architecture=architecture, lora_rank=2 if lora else None)
        model.compile(keras.optimizers.Adam(1e-2), loss=SamToNeLoss(0.05))
        before = {id(v): v.numpy() for v in model.weights}
        model.fit(batch, batch_size=8, epochs=1, verbose=0)
        changed = {id(v): not np.allclose(before[id(v)], v.numpy()) for v in model.weights}
        embedding = model.query_tower.token_embedding.embeddings
        assert changed[id(embedding)] == (architecture not in ("ade-fte", "ade-lora")), \
            architecture
        assert changed[id(model.document_tower.encoder.weights[0])] != lora, architecture
        if lora:
            assert all(changed[id(v)] for v in model.trainable_variables
                       if v.path.endswith("_b")), architecture


def test_encode_matches_tower_and_is_normalised():
    rng = np.random.default_rng(1)
    model = DualEncoder(TINY, architecture="ade", projection_dim=8)
    tokens = _tokens(rng, 10, 6)
    tokens["padding_mask"][:, 4:] = 0
    out = model.encode_documents(tokens, batch_size=3)
    direct = model.document_tower(tokens).numpy()
    np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(model.encode_queries(tokens), out)  # ADE towers differ


def test_padding_does_not_change_mean_pooled_embeddings():
    model = DualEncoder(TINY, architecture="sde")
    ids = np.array([[1, 5, 9, 0, 0]], "int32")
    padded = model.encode_queries({"token_ids": ids, "padding_mask": (ids > 0).astype("int32")})
    short = model.encode_queries({"token_ids": ids[:, :3], "padding_mask": np.ones((1, 3), "int32")})
    np.testing.assert_allclose(padded, short, rtol=1e-5, atol=1e-6)


def test_bad_batches_name_the_problem():
    model = DualEncoder(TINY)
    model.compile(loss=SamToNeLoss())
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="missing \\['document'\\]"):
        model.train_step({"query": _tokens(rng, 4, 5)})
    with pytest.raises(ValueError, match=r"token_ids .* got \(4, 5\)"):
        model({"hard_negatives": _tokens(rng, 4, 5)})
    with pytest.raises(TypeError, match="SamToNeLoss"):
        model.compile(loss="mse")


@pytest.fixture(scope="module")
def scifact_train():
    collection = load_beir(scifact_path(), split="train")
    return examples_from_qrels(collection)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tiny_tower_trains_on_scifact(architecture, scifact_train):
    """A few hundred steps lower the loss and raise in-batch accuracy."""
    keras.utils.set_random_seed(0)
    tokenizer = HashingTokenizer(vocab_size=TINY.vocab_size, max_length=48,
                                 pad_to_max_length=True)
    train = training_dataset(scifact_train, tokenizer, tokenizer, global_batch_size=16,
                             seed=0, epochs=6)
    probe = training_dataset(scifact_train, tokenizer, tokenizer, global_batch_size=16,
                             seed=123).take(20).cache()
    model = DualEncoder(TINY, architecture=architecture, projection_dim=32,
                        lora_rank=8 if architecture == "ade-lora" else None)
    model.compile(keras.optimizers.Adam(2e-3), loss=SamToNeLoss(0.05))
    before = model.evaluate(probe, verbose=0, return_dict=True)
    history = model.fit(train, verbose=0)
    after = model.evaluate(probe, verbose=0, return_dict=True)
    steps = sum(1 for _ in train)
    assert steps >= 250
    assert np.isfinite(history.history["loss"][0])
    assert after["loss"] < before["loss"] - 0.5, (before, after)
    # ADE-LoRA trains rank-8 adapters on a frozen random base: less to learn with
    # (measured: accuracy 0.08 → 0.15 where the full towers reach +0.2)
    gain = 0.05 if architecture == "ade-lora" else 0.2
    assert after["in_batch_accuracy"] > before["in_batch_accuracy"] + gain, (before, after)


def test_prompts_are_applied_inside_the_graph_in_training_encoding_and_export(tmp_path):
    """``query_prompt`` / ``document_prompt``: the prompted model encodes "x" as the
    plain model (same weights) encodes "query: x"; the export and a reloaded .keras
    model do the same without client-side prompts; training batches carry the prompt."""
    import keras
    import tensorflow as tf

    from samtone_tf.data.pipeline import Example, training_dataset
    from samtone_tf.export.saved_model import SavedModelEncoder, export_saved_model

    spec = tiny_spec(vocab_size=2048, max_length=32)
    keras.utils.set_random_seed(0)
    prompted = DualEncoder(spec, architecture="sde", query_prompt="query: ",
                           document_prompt="passage: ")
    plain = DualEncoder(spec, architecture="sde")
    plain.set_weights(prompted.get_weights())
    texts = ["what lowers blood pressure?", "T cells and B cells"]
    np.testing.assert_allclose(prompted.encode_queries(texts),
                               plain.encode_queries(["query: " + t for t in texts]), atol=1e-6)
    np.testing.assert_allclose(prompted.encode_documents(texts),
                               plain.encode_documents(["passage: " + t for t in texts]),
                               atol=1e-6)
    assert not np.allclose(prompted.encode_queries(texts), plain.encode_queries(texts))

    export_saved_model(prompted, str(tmp_path / "export"))
    served = SavedModelEncoder(str(tmp_path / "export"))
    np.testing.assert_allclose(served.encode_queries(texts), prompted.encode_queries(texts),
                               atol=1e-5)
    np.testing.assert_allclose(served.encode_documents(texts),
                               prompted.encode_documents(texts), atol=1e-5)
    prompted.save(str(tmp_path / "m.keras"))
    loaded = keras.models.load_model(str(tmp_path / "m.keras"))
    assert (loaded.query_prompt, loaded.document_prompt) == ("query: ", "passage: ")
    np.testing.assert_allclose(loaded.encode_documents(texts), prompted.encode_documents(texts),
                               atol=1e-6)

    examples = [Example(f"q{i}", f"d{i}", f"question {i}", f"answer {i}") for i in range(4)]
    batch = next(iter(training_dataset(examples, prompted.query_tokenizer(),
                                       prompted.document_tokenizer(), 4, seed=0)))
    first = plain.query_tokenizer()(tf.constant(["query: question 0"]))["token_ids"][0]
    rows = [r[:len(first)] for r in batch["query"]["token_ids"].numpy()]
    assert any(np.array_equal(r, first.numpy()) for r in rows)
    with pytest.raises(ValueError, match="query_prompt must be a string"):
        DualEncoder(spec, query_prompt=None)
