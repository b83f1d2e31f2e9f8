"""The dual-encoder architectures of Dong et al. 2022 as which parts the two towers share:
SDE (one tower), ADE (two), ADE-STE (shared token embedding), ADE-FTE (shared, frozen
token embedding), ADE-SPL (shared projection layer); and ADE-LoRA (one frozen shared
token embedding and encoder, a LoRA adapter set per tower: :mod:`samtone_tf.layers.lora`)."""

from __future__ import annotations

import keras

from samtone_tf.layers.tower import Tower

ARCHITECTURES = ("sde", "ade", "ade-ste", "ade-fte", "ade-spl", "ade-lora")


def build_towers(backbone, architecture="sde", pooling="mean", projection_dim=None):
    """Returns (query_tower, document_tower) sharing parts as ``architecture`` says."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if projection_dim is None:  # a pretrained projection (EmbeddingGemma's dense layers)
        projection_dim = getattr(backbone, "projection_dim", None)
    if architecture == "ade-spl" and projection_dim is None:
        projection_dim = backbone.hidden_dim

    def projection(name):
        if projection_dim is None:
            return None
        return keras.layers.Dense(projection_dim, use_bias=False, name=name)

    if architecture == "sde":
        tower = Tower(backbone.make_token_embedding(), backbone.make_encoder(),
                      pooling=pooling, projection=projection("projection"), name="tower")
        return tower, tower
    if architecture == "ade-lora":  # one base; the adapters are added once it is loaded
        embedding, encoder = backbone.make_token_embedding(), backbone.make_encoder()
        return tuple(Tower(embedding, encoder, pooling=pooling,
                           projection=projection(f"{side}_projection"), adapter_side=side,
                           name=f"{side}_tower") for side in ("query", "document"))

    shared_embedding = None
    if architecture in ("ade-ste", "ade-fte"):
        shared_embedding = backbone.make_token_embedding(name="shared_token_embedding")
        if architecture == "ade-fte":
            shared_embedding.trainable = False
    shared_projection = projection("shared_projection") if architecture == "ade-spl" else None

    def tower(prefix):
        embedding = shared_embedding or backbone.make_token_embedding(
            name=f"{prefix}_token_embedding")
        proj = shared_projection if architecture == "ade-spl" else projection(
            f"{prefix}_projection")
        return Tower(embedding, backbone.make_encoder(name=f"{prefix}_encoder"),
                     pooling=pooling, projection=proj, name=f"{prefix}_tower")

    return tower("query"), tower("document")


def initialize_tower(backbone, tower):
    """Copies the backbone's pretrained weights into ``tower``'s parts: token embedding and
    encoder, and the projection where the backbone has one of that size."""
    backbone.initialize(tower.token_embedding, tower.encoder)
    matrix = getattr(backbone, "projection_matrix", None)
    if matrix is not None and tower.projection is not None and (
            tuple(tower.projection.kernel.shape) == matrix.shape):
        tower.projection.kernel.assign(matrix)


def own_max_length(backbone):
    """The length a backbone was trained for: a sentence-transformers folder's
    ``max_seq_length`` (``sentence_bert_config.json``), else ``default_max_length``
    of the spec, else its position count."""
    length = getattr(backbone, "default_max_length", None) or backbone.max_length
    return min(int(length), int(backbone.max_length))
