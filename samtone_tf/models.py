"""DualEncoder: a query tower and a document tower trained with SamToNeLoss.

Architectures (Dong et al. 2022), i.e. which parts the two towers share:

==========  ================  ===============  ==================
name        token embedding   encoder layers   projection
==========  ================  ===============  ==================
``sde``     shared            shared           shared (one tower)
``ade``     separate          separate         separate
``ade-ste`` shared            separate         separate
``ade-fte`` shared, frozen    separate         separate
``ade-spl`` separate          separate         shared
==========  ================  ===============  ==================

ADE-SPL needs a projection; without ``projection_dim`` it projects to the
backbone's hidden size. Pretrained backbones initialise both towers from the same
checkpoint (ADE towers start as copies and then diverge).

Training batches (what ``fit`` receives; all tensors, no strings, so that they
distribute across replicas)::

    {"query":    {"token_ids": [B, Lq] int32, "padding_mask": [B, Lq] int32},
     "document": {"token_ids": [B, Ld] int32, "padding_mask": [B, Ld] int32},
     "hard_negatives": {"token_ids": [B, K, Ld], "padding_mask": [B, K, Ld]},  # optional
     "query_ids": [B] int, "document_ids": [B] int,                            # optional
     "hard_negative_ids": [B, K] int}                                          # optional

Example:

>>> import numpy as np, keras
>>> from samtone_tf.models import DualEncoder
>>> from samtone_tf.towers import SmallTransformer
>>> from samtone_tf.losses import SamToNeLoss
>>> spec = SmallTransformer(vocab_size=50, hidden_dim=8, num_layers=1, num_heads=2,
...                         intermediate_dim=16, max_length=6)
>>> model = DualEncoder(spec, architecture="ade-spl", projection_dim=4)
>>> model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05))
>>> ids = np.random.default_rng(0).integers(1, 50, size=(8, 6)).astype("int32")
>>> tokens = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
>>> history = model.fit({"query": tokens, "document": tokens}, batch_size=4, verbose=0)
>>> model.encode_queries(tokens).shape
(8, 4)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from samtone_tf.losses import SamToNeLoss
from samtone_tf.towers import Tower

ARCHITECTURES = ("sde", "ade", "ade-ste", "ade-fte", "ade-spl")


def build_towers(backbone, architecture="sde", pooling="mean", projection_dim=None):
    """Returns (query_tower, document_tower) sharing parts as ``architecture`` says."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
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


def own_max_length(backbone):
    """The length a backbone was trained for: a sentence-transformers folder's
    ``max_seq_length`` (``sentence_bert_config.json``), else ``default_max_length``
    of the spec, else its position count."""
    length = getattr(backbone, "default_max_length", None) or backbone.max_length
    return min(int(length), int(backbone.max_length))


class DualEncoder(keras.Model):
    """Query and document towers with a contrastive training step.

    Args:
        backbone: a backbone spec (e.g. :class:`samtone_tf.towers.SmallTransformer`
            or a pretrained spec from ``samtone_tf.towers``).
        architecture: "sde" | "ade" | "ade-ste" | "ade-fte" | "ade-spl".
        pooling: "mean" (default) or "cls".
        projection_dim: size of the bias-free projection, or None for none.
        query_max_length, document_max_length: tokens per query / document for the
            raw-text entry points (``encode_queries(["text", ...])``, export);
            default: the backbone's own length (:func:`own_max_length`; 256 for
            all-MiniLM-L6-v2). Batches are padded to their longest text, so a long
            limit costs nothing for short queries.

    ``compile(optimizer, loss=SamToNeLoss(...))`` then ``fit`` on batches of the
    form in the module docstring. The loss object owns the temperature and the
    in-batch metrics (``loss``, ``in_batch_accuracy``, ``in_batch_mrr``).
    """

    def __init__(self, backbone, architecture="sde", pooling="mean", projection_dim=None,
                 query_max_length=None, document_max_length=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        if query_max_length is None:
            query_max_length = own_max_length(backbone)
        if document_max_length is None:
            document_max_length = own_max_length(backbone)
        for name, value in (("query_max_length", query_max_length),
                            ("document_max_length", document_max_length)):
            if not 2 <= value <= backbone.max_length:
                raise ValueError(f"{name} must be in [2, {backbone.max_length}] (the "
                                 f"backbone's positions), got {value}")
        self.query_max_length = query_max_length
        self.document_max_length = document_max_length
        self._tokenizers = {}
        self._encode_functions = {}
        self.architecture = architecture
        self.pooling = pooling
        self.projection_dim = projection_dim
        self.query_tower, self.document_tower = build_towers(
            backbone, architecture, pooling, projection_dim)
        self.loss_fn = None
        # Create every variable now (inside the caller's strategy scope).
        dummy = {"token_ids": np.zeros((1, 2), "int32"), "padding_mask": np.ones((1, 2), "int32")}
        self.query_tower(dummy)
        self.document_tower(dummy)
        for tower in {id(t): t for t in (self.query_tower, self.document_tower)}.values():
            backbone.initialize(tower.token_embedding, tower.encoder)
        self.built = True

    @property
    def embedding_dim(self):
        return self.query_tower.output_dim

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        from samtone_tf.distribute import keras_symbolic_build_shim_needed

        if not keras_symbolic_build_shim_needed():
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        # Every variable exists since __init__; only the optimizer needs building.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Like ``keras.Model.compile``; ``loss`` is a :class:`SamToNeLoss`
        (default ``SamToNeLoss()``), the only loss this model trains with."""
        if loss is None:
            loss = SamToNeLoss()
        if not isinstance(loss, SamToNeLoss):
            raise TypeError(f"DualEncoder trains with a SamToNeLoss, got {type(loss).__name__}")
        self.loss_fn = loss
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        return [] if self.loss_fn is None else list(self.loss_fn.metrics)

    # -------------------------------------------------------------------- call
    def call(self, inputs, training=None):
        """Returns {"query_embeddings", "document_embeddings"[, "hard_negative_embeddings"]}."""
        outputs = {}
        if "query" in inputs:
            outputs["query_embeddings"] = self.query_tower(inputs["query"], training=training)
        if "document" in inputs:
            outputs["document_embeddings"] = self.document_tower(
                inputs["document"], training=training)
        if inputs.get("hard_negatives") is not None:
            hard = inputs["hard_negatives"]
            ids = tf.convert_to_tensor(hard["token_ids"])
            if ids.shape.rank != 3:
                raise ValueError(
                    "hard_negatives token_ids must be [batch, num_negatives, length]; got "
                    f"{tuple(ids.shape.as_list())}")
            shape = tf.shape(ids)
            flat = {k: tf.reshape(v, [-1, shape[2]]) for k, v in hard.items()}
            embedded = self.document_tower(flat, training=training)
            outputs["hard_negative_embeddings"] = tf.reshape(
                embedded, [shape[0], shape[1], embedded.shape[-1]])
        return outputs

    def _loss(self, batch, training):
        missing = {"query", "document"} - set(batch)
        if missing:
            raise ValueError(
                f"a training batch needs 'query' and 'document' token dicts; missing "
                f"{sorted(missing)} (got keys {sorted(batch)})")
        outputs = self(batch, training=training)
        return self.loss_fn(
            outputs["query_embeddings"], outputs["document_embeddings"],
            hard_negative_embeddings=outputs.get("hard_negative_embeddings"),
            query_ids=batch.get("query_ids"), document_ids=batch.get("document_ids"),
            hard_negative_ids=batch.get("hard_negative_ids"))

    def _check_compiled(self):
        if self.loss_fn is None:
            raise RuntimeError("call compile(optimizer, loss=SamToNeLoss(...)) before fit")

    def train_step(self, data):
        self._check_compiled()
        batch = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss = self._loss(batch, training=True)
            if self.losses:  # regularisers: each replica adds its share
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                loss += tf.add_n(self.losses) / replicas
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        return self._step_logs()

    def test_step(self, data):
        self._check_compiled()
        batch = data[0] if isinstance(data, tuple) else data
        self._loss(batch, training=False)
        return self._step_logs()

    def _step_logs(self):
        from samtone_tf.distribute import (in_multi_worker_mode,
                                           keras_symbolic_build_shim_needed)

        logs = {m.name: m.result() for m in self.metrics}
        if keras_symbolic_build_shim_needed() and in_multi_worker_mode(self.distribute_strategy):
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}  # see the shim's note
        return logs

    # ---------------------------------------------------------------- encoding
    def query_tokenizer(self):
        """The backbone's tokenizer for queries (``query_max_length`` tokens)."""
        return self.backbone.make_tokenizer(self.query_max_length)

    def document_tokenizer(self):
        """The backbone's tokenizer for documents (``document_max_length`` tokens)."""
        return self.backbone.make_tokenizer(self.document_max_length)

    def encode_queries(self, inputs, batch_size=64):
        """Strings or a token dict of arrays → float32 numpy [N, dim], L2-normalised."""
        return self._encode("query", inputs, batch_size)

    def encode_documents(self, inputs, batch_size=64):
        """Strings (documents as ``title + " " + text``) or a token dict → [N, dim]."""
        return self._encode("document", inputs, batch_size)

    def _encode(self, side, inputs, batch_size):
        tower = self.query_tower if side == "query" else self.document_tower
        if not isinstance(inputs, dict):
            texts = list(inputs)
            if not texts:
                return np.zeros((0, tower.output_dim), "float32")
            tokenizer = self._tokenizers.get(side)
            if tokenizer is None:
                tokenizer = self._tokenizers[side] = (
                    self.query_tokenizer() if side == "query" else self.document_tokenizer())
            inputs = {k: v.numpy() for k, v in tokenizer(tf.constant(texts)).items()}
        if side not in self._encode_functions:
            self._encode_functions[side] = _encode_function(tower, self.distribute_strategy)
        return encode_sorted(self._encode_functions[side], inputs, batch_size, tower.output_dim)


def _encode_function(tower, strategy):
    """tokens → embeddings; with several local replicas (MirroredStrategy, TPU) each
    batch is split across them. Multi-worker strategies encode on the local device."""
    from samtone_tf.distribute import in_multi_worker_mode

    single = tf.function(lambda t: tower(t, training=False), reduce_retracing=True)
    replicas = strategy.num_replicas_in_sync
    if replicas == 1 or in_multi_worker_mode(strategy):
        return single

    @tf.function(reduce_retracing=True)
    def distributed(per_replica):
        outputs = strategy.run(lambda t: tower(t, training=False), args=(per_replica,))
        return tf.concat(strategy.experimental_local_results(outputs), axis=0)

    def function(tokens):
        rows = len(tokens["token_ids"])
        share = -(-rows // replicas)
        padded = {k: np.concatenate([v, np.repeat(v[-1:], share * replicas - rows, axis=0)])
                  for k, v in tokens.items()}

        def value(context):
            start = context.replica_id_in_sync_group * share
            return {k: v[start:start + share] for k, v in padded.items()}

        per_replica = strategy.experimental_distribute_values_from_function(value)
        return distributed(per_replica)[:rows]

    return function


def encode_sorted(function, tokens, batch_size, dim):
    """Length-sorted batches, each padded only to its longest row (dynamic padding);
    returns the embeddings in the input order."""
    token_ids = np.asarray(tokens["token_ids"])
    mask = np.asarray(tokens["padding_mask"])
    n = len(token_ids)
    out = np.zeros((n, dim), "float32")
    if n == 0:
        return out
    lengths = mask.sum(axis=1)
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        # pad to a multiple of 16 (within the row width): few distinct shapes to trace
        width = min(-(-max(int(lengths[rows].max()), 1) // 16) * 16, token_ids.shape[1])
        chunk = {"token_ids": token_ids[rows, :width], "padding_mask": mask[rows, :width]}
        out[rows] = function(chunk).numpy()
    return out
