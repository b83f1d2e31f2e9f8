"""T5-encoder tower: SentencePiece in TF equals the sentencepiece library; the
encoder equals keras-hub's T5Backbone encoder; the tower trains with SamToNe."""

import gzip
import json
import os

import keras
import numpy as np
import pytest
import sentencepiece
import tensorflow as tf

from samtone_tf.data.beir import load_beir
from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
from samtone_tf.losses.samtone import SamToNeLoss
from samtone_tf.models.dual_encoder import DualEncoder
from samtone_tf.resources import scifact_path
from samtone_tf.tokenizers.in_graph import SentencePieceTokenizer
from samtone_tf.models import T5Encoder
from samtone_tf.layers.encoders import T5TextEncoder

SPEC = T5Encoder(hidden_dim=32, num_layers=2, num_heads=4, intermediate_dim=64)


def _lines(n):
    with gzip.open(os.path.join(scifact_path(), "queries.jsonl.gz"), "rt") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(n), handle)]


def test_sentencepiece_ids_equal_the_library():
    lines = _lines(500) + ["Café naïve 東京 😀", ""]
    reference = sentencepiece.SentencePieceProcessor(model_file=SPEC.model_path)
    ours = SentencePieceTokenizer(SPEC.model_path, max_length=1000)
    got = ours.tokenize(tf.constant(lines)).to_list()
    assert got == [reference.encode(line) for line in lines]
    out = ours(tf.constant(lines[:3]))
    for row, line in enumerate(lines[:3]):
        n = int(out["padding_mask"][row].numpy().sum())
        assert out["token_ids"][row, :n].numpy().tolist() == reference.encode(line) + [1]


def test_encoder_equals_keras_hub_t5_backbone_encoder():
    import keras_hub

    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=100, num_layers=2, num_heads=4, hidden_dim=32, intermediate_dim=64,
        dropout=0.0, activation="gelu", use_gated_activation=True)
    ours = T5TextEncoder(32, 2, 4, 64, activation="gelu", use_gated_activation=True)
    ids = np.random.default_rng(0).integers(3, 100, size=(2, 7)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    embedded = backbone.get_layer("token_embedding")(ids)
    ours(embedded, padding_mask=mask)
    for mine, theirs in zip(ours.transformer_layers, backbone.encoder_transformer_layers):
        mine.set_weights(theirs.get_weights())
    ours.output_layer_norm.set_weights(backbone.encoder_layer_norm.get_weights())
    expected = backbone({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                         "decoder_token_ids": ids[:, :2], "decoder_padding_mask": mask[:, :2]}
                        )["encoder_sequence_output"].numpy()
    got = ours(embedded, padding_mask=mask).numpy()
    np.testing.assert_allclose(got[mask == 1], expected[mask == 1], atol=1e-5)


@pytest.mark.slow
def test_t5_tower_trains_with_samtone():
    keras.utils.set_random_seed(0)
    model = DualEncoder(SPEC, architecture="ade-spl", query_max_length=32,
                        document_max_length=64)
    model.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05))
    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    data = training_dataset(examples, model.query_tokenizer(), model.document_tokenizer(), 16,
                            seed=0).take(4).cache()
    before = model.evaluate(data, verbose=0, return_dict=True)["loss"]
    model.fit(data.repeat(8), verbose=0)
    after = model.evaluate(data, verbose=0, return_dict=True)["loss"]
    assert after < before - 0.5, (before, after)
    assert model.query_tower.projection is model.document_tower.projection
