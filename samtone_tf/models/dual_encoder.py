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
>>> from samtone_tf.models.dual_encoder import DualEncoder
>>> from samtone_tf.models.backbones import SmallTransformer
>>> from samtone_tf.losses.samtone import SamToNeLoss
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

from samtone_tf.devices import in_multi_worker_mode, keras_symbolic_build_shim_needed
from samtone_tf.internals import global_dtype_policy
from samtone_tf.layers.keyed_dropout import SIDES, dropout_keys, global_rows, key_dropout_layers
from samtone_tf.layers.lora import adapt_towers, check_lora
from samtone_tf.layers.remat import seed_generators
from samtone_tf.layers.tower import POOLING_OPTIONS
from samtone_tf.losses.samtone import SamToNeLoss
from samtone_tf.models.architectures import (ARCHITECTURES, build_towers, initialize_tower,
                                             own_max_length)
from samtone_tf.models.encoding import check_jit_compile, encode_side
from samtone_tf.models.gradient_cache import cached_train_step
from samtone_tf.models.memory_policy import check_chunk, check_remat, resolve_chunk, resolve_remat
from samtone_tf.tokenizers.padding import check_padding
from samtone_tf.tokenizers.prompted import check_prompt, with_prompt


@keras.saving.register_keras_serializable(package="samtone_tf")
class DualEncoder(keras.Model):
    """Query and document towers trained with :class:`SamToNeLoss` through Keras' own
    training loop.

    Args:
        backbone: a backbone spec (:class:`samtone_tf.models.backbones.SmallTransformer`,
            :class:`~samtone_tf.models.backbones.HFBert`, :func:`~samtone_tf.models.backbones.minilm`, ...;
            see :func:`samtone_tf.models.backbones.get_backbone`).
        architecture: "sde" | "ade" | "ade-ste" | "ade-fte" | "ade-spl" | "ade-lora".
        pooling: "mean" (default), "cls" or "last_token" (the last non-padding token).
        projection_dim: size of the bias-free projection, or None for none.
        query_max_length, document_max_length: tokens per query / document for the
            raw-text entry points (``encode_queries(["text", ...])``, export);
            default: the backbone's own length (:func:`own_max_length`; 256 for
            all-MiniLM-L6-v2). Batches are padded to their longest text, so a long
            limit costs nothing for short queries.
        padding: how batches are padded, for ``dataset_for`` and encoding: "dynamic"
            (default), "buckets" or "max_length" (:mod:`samtone_tf.tokenizers.padding`; use
            "buckets" or "max_length" on TPUs and with XLA: few static shapes).
        encode_jit_compile: XLA for ``encode_queries`` / ``encode_documents``: "auto"
            (default: on with one local GPU/TPU, off on CPU and with several replicas;
            see :func:`samtone_tf.models.encoding.resolve_encode_jit`), True or False.
            Training follows ``compile(jit_compile=...)`` as in any Keras model.
        dtype: a Keras dtype policy, e.g. "mixed_bfloat16" or "mixed_float16" (default:
            the global policy, ``keras.config.set_dtype_policy``). The towers compute
            in the policy's compute dtype with float32 weights; their outputs, the loss,
            the temperature and the similarity matrix are float32; under
            "mixed_float16" ``compile`` wraps the optimizer in Keras' loss scaling.
        remat: recompute each transformer layer in the backward pass instead of
            keeping its activations (:mod:`samtone_tf.layers.remat`): the same step at a
            fraction of the activation memory, for one more forward pass (measured in
            docs/RESULTS.md); "auto": on a host without a GPU or TPU
            (:mod:`samtone_tf.models.memory_policy`).
        query_prompt, document_prompt: text put before every query / document inside
            the tokenizer (e.g. "query: ", "passage: "), so training, encoding and the
            export all see it (:mod:`samtone_tf.tokenizers.prompted`); default none.
        lora_rank, lora_alpha: rank-r adapters (scale α / r) on the attention query and
            value projections, the rest of the towers frozen; "ade-lora" shares one base
            between two adapter sets (:mod:`samtone_tf.layers.lora`). Default: none.

    Training: ``compile(optimizer, loss=SamToNeLoss(...), metrics=[...])`` then ``fit``;
    Keras' own ``train_step`` runs through the documented hooks :meth:`compute_loss` and
    :meth:`compute_metrics` (docs/guides/loss.md); ``save`` / ``load_model`` round-trip
    the model, its loss and its optimizer state.
    """

    def __init__(self, backbone, architecture="sde", pooling="mean", projection_dim=None,
                 query_max_length=None, document_max_length=None, padding="dynamic",
                 encode_jit_compile="auto", remat=False, dropout_seed=None, query_prompt="",
                 document_prompt="", lora_rank=None, lora_alpha=None, **kwargs):
        initialize = kwargs.pop("_initialize_from_backbone", True)
        super().__init__(**kwargs)
        if isinstance(backbone, dict):  # from a config
            backbone = keras.saving.deserialize_keras_object(backbone)
        self.backbone = backbone
        if query_max_length is None:
            query_max_length = own_max_length(backbone)
        if document_max_length is None:
            document_max_length = own_max_length(backbone)
        self.check_arguments(architecture, pooling, projection_dim, query_max_length,
                             document_max_length, backbone.max_length, padding,
                             encode_jit_compile, remat)
        check_prompt("query_prompt", query_prompt)
        check_prompt("document_prompt", document_prompt)
        check_lora(lora_rank, lora_alpha, architecture)
        self.lora_rank, self.lora_alpha = lora_rank, lora_alpha
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.padding, self.encode_jit_compile = padding, encode_jit_compile
        self.query_max_length = query_max_length
        self.document_max_length = document_max_length
        self._tokenizers = {}
        self._encode_functions = {}
        self.architecture = architecture
        self.pooling = pooling
        self.projection_dim = projection_dim
        with global_dtype_policy(self.dtype_policy):  # sublayers take the model's policy
            self.query_tower, self.document_tower = build_towers(
                backbone, architecture, pooling, projection_dim)
        self.remat = remat
        for tower in (self.query_tower, self.document_tower):
            tower.encoder.remat = resolve_remat(remat)
        self.loss_fn = None
        self.gradient_cache_chunk_size = None
        # Create every variable now (inside the caller's strategy scope).
        dummy = {"token_ids": np.zeros((1, 2), "int32"), "padding_mask": np.ones((1, 2), "int32")}
        self.query_tower(dummy)
        self.document_tower(dummy)
        # Dropout masks keyed on (seed, step, side, example, layer): every way of computing
        # a step (plain, gradient cache, remat, replicas) draws the same ones
        # (samtone_tf.layers.keyed_dropout). The seed is the first dropout layer's own
        # (drawn as Keras draws it, from the global seed) unless given; it is saved.
        generators = [g for tower in (self.query_tower, self.document_tower)
                      for g in seed_generators(tower)]
        for tower in {id(t): t for t in (self.query_tower, self.document_tower)}.values():
            key_dropout_layers(tower)
        if dropout_seed is None:
            dropout_seed = int(generators[0].state.numpy()[-1]) if generators else 0
        self.dropout_seed = int(dropout_seed)
        if initialize:  # a model loaded from a .keras file gets its weights from the file
            for tower in {id(t): t for t in (self.query_tower, self.document_tower)}.values():
                initialize_tower(backbone, tower)
        release = getattr(backbone, "release", None)
        if release is not None:
            release()  # no copy of the checkpoint outlives the towers
        if lora_rank:  # after the weights: adapters on the loaded base, the rest frozen
            adapt_towers(self.query_tower, self.document_tower, lora_rank, lora_alpha,
                         two_sided=architecture == "ade-lora")
        self.built = True

    @staticmethod
    def check_arguments(architecture, pooling, projection_dim=None, query_max_length=None,
                        document_max_length=None, max_length=None, padding="dynamic",
                        encode_jit_compile="auto", remat=False):
        """Raises ValueError naming the first invalid argument (the one place these
        are validated; the job configuration calls it too, before any backbone loads)."""
        check_padding(padding)
        check_jit_compile(encode_jit_compile, "encode_jit_compile")
        check_remat(remat)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if pooling not in POOLING_OPTIONS:
            raise ValueError(f"pooling must be one of {POOLING_OPTIONS}, got {pooling!r}")
        if projection_dim is not None and (isinstance(projection_dim, bool) or not isinstance(
                projection_dim, int) or projection_dim <= 0):
            raise ValueError(f"projection_dim must be a positive integer, got {projection_dim!r}")
        for name, value in (("query_max_length", query_max_length),
                            ("document_max_length", document_max_length)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
            if max_length is not None and value > max_length:
                raise ValueError(f"{name} must be at most {max_length} (the backbone's "
                                 f"positions), got {value}")

    @property
    def embedding_dim(self):
        return self.query_tower.output_dim

    # ------------------------------------------------------------ serialization
    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "remat": self.remat,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "architecture": self.architecture, "pooling": self.pooling,
            "projection_dim": self.projection_dim,
            "query_max_length": self.query_max_length,
            "document_max_length": self.document_max_length,
            "padding": self.padding, "encode_jit_compile": self.encode_jit_compile,
            "dropout_seed": self.dropout_seed,
            "query_prompt": self.query_prompt, "document_prompt": self.document_prompt,
            "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha,
        }

    def save_assets(self, folder):
        """What the backbone spec needs beyond its config (a vocabulary) into the
        ``.keras`` file, so that it loads without the pretrained folder or package."""
        if hasattr(self.backbone, "save_assets"):
            self.backbone.save_assets(folder)

    def load_assets(self, folder):
        if hasattr(self.backbone, "load_assets"):
            self.backbone.load_assets(folder)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        # the weights come from the saved file: skip copying the pretrained checkpoint
        return cls(**config, _initialize_from_backbone=False)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self.loss_fn is not None:
            config["loss"] = keras.saving.serialize_keras_object(self.loss_fn)
            config["gradient_cache_chunk_size"] = self.gradient_cache_chunk_size
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)  # its state loads next

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not keras_symbolic_build_shim_needed():
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        # Every variable exists since __init__; only the optimizer needs building.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, metrics=None,
                gradient_cache_chunk_size=None, **kwargs):
        """``keras.Model.compile`` with ``loss`` a :class:`SamToNeLoss` (default
        ``SamToNeLoss()``), the only loss this model trains with. ``metrics`` are
        Keras metrics of (row of the positive, query × document cosines); see the
        class docstring. Every other keyword (``jit_compile``,
        ``steps_per_execution``, ...) goes to Keras unchanged.

        ``gradient_cache_chunk_size``: None (off, the default), N: each step embeds
        the batch N rows at a time and back-propagates chunk by chunk, so the peak
        activation memory is one chunk's (:mod:`samtone_tf.models.gradient_cache`); the step
        equals the uncached one; or "auto": chunks of 4 on a host without a GPU or TPU
        (:mod:`samtone_tf.models.memory_policy`)."""
        if loss is None:
            loss = SamToNeLoss()
        if not isinstance(loss, SamToNeLoss):
            raise TypeError(f"DualEncoder trains with a SamToNeLoss, got {type(loss).__name__}")
        check_chunk(gradient_cache_chunk_size)
        self.loss_fn = loss
        self.gradient_cache_chunk_size = gradient_cache_chunk_size
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)

    @property
    def metrics(self):
        # Keras' own "loss" tracker replaces the loss object's (same value, one name).
        own = getattr(self.loss_fn, "loss_tracker", None)
        return [m for m in super().metrics if m is not own]

    # -------------------------------------------------------------------- call
    def dropout_keys(self, tokens, side, rows=None):
        """The :func:`~samtone_tf.layers.keyed_dropout.dropout_keys` block of a tower call
        in training: this model's seed, the optimizer's step, the global rows of
        ``tokens`` (``rows``: given by a caller that embeds a slice of them)."""
        if rows is None:
            rows = global_rows(tf.shape(tokens["token_ids"])[0])
        optimizer = getattr(self, "optimizer", None)
        step = optimizer.iterations if optimizer is not None else tf.constant(0, tf.int64)
        return dropout_keys(self.dropout_seed, step, rows, SIDES[side])

    def _tower(self, tower, tokens, side, training):
        if not training:
            return tower(tokens, training=training)
        with self.dropout_keys(tokens, side):
            return tower(tokens, training=training)

    def call(self, inputs, training=None):
        """Returns {"query_embeddings", "document_embeddings"[, "hard_negative_embeddings"]}."""
        outputs = {}
        if "query" in inputs:
            outputs["query_embeddings"] = self._tower(self.query_tower, inputs["query"], "query",
                                                      training)
        if "document" in inputs:
            outputs["document_embeddings"] = self._tower(
                self.document_tower, inputs["document"], "document", training)
        if inputs.get("hard_negatives") is not None:
            hard = inputs["hard_negatives"]
            ids = tf.convert_to_tensor(hard["token_ids"])
            if ids.shape.rank != 3:
                raise ValueError(
                    "hard_negatives token_ids must be [batch, num_negatives, length]; got "
                    f"{tuple(ids.shape.as_list())}")
            shape = tf.shape(ids)
            flat = {k: tf.reshape(v, [-1, shape[2]]) for k, v in hard.items()}
            embedded = self._tower(self.document_tower, flat, "hard_negatives", training)
            outputs["hard_negative_embeddings"] = tf.reshape(
                embedded, [shape[0], shape[1], embedded.shape[-1]])
        return outputs

    def train_step(self, data):
        """Keras' own step; with the gradient cache on, its three passes (embed without
        a tape, loss gradient w.r.t. the embeddings, re-embed and back-propagate chunk by
        chunk) need their own step: :func:`samtone_tf.models.gradient_cache.cached_train_step`.
        That is the only place this model replaces a Keras step."""
        chunk = self.gradient_cache_chunk_size
        if chunk is None:
            return super().train_step(data)
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if chunk == "auto":  # the batch's static rows (or None) decide
            rows = x["query"]["token_ids"].shape[0]
            chunk = resolve_chunk(chunk, rows, rows and rows * (
                self.distribute_strategy.num_replicas_in_sync))
        if not chunk:
            return super().train_step(data)
        return cached_train_step(self, x, chunk)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """SamToNe over the outputs of ``call`` (ids read from the batch ``x``), plus
        regularisers. Per replica the SamToNe value is sum(its rows) / global batch
        (see :mod:`samtone_tf.losses`), so regularisers are divided by the model's
        replica count: summing gradients over replicas then counts them once.
        ``y`` and ``sample_weight`` are not used: the targets are the batch's own
        positives."""
        self._check_compiled()
        missing = {"query", "document"} - set(x if isinstance(x, dict) else {})
        if missing:
            raise ValueError(
                f"a training batch needs 'query' and 'document' token dicts; missing "
                f"{sorted(missing)} (got {sorted(x) if isinstance(x, dict) else type(x).__name__})")
        loss = self.loss_fn(
            y_pred["query_embeddings"], y_pred["document_embeddings"],
            hard_negative_embeddings=y_pred.get("hard_negative_embeddings"),
            query_ids=x.get("query_ids"), document_ids=x.get("document_ids"),
            hard_negative_ids=x.get("hard_negative_ids"))
        if self.losses:
            replicas = self.distribute_strategy.num_replicas_in_sync
            loss += tf.cast(tf.add_n(self.losses), loss.dtype) / replicas
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics get (row of each query's positive, the replica's query ×
        document cosines); returns the step's logs."""
        if self._compile_metrics is not None:
            q = tf.cast(y_pred["query_embeddings"], tf.float32)
            d = tf.cast(y_pred["document_embeddings"], tf.float32)
            scores = tf.matmul(q, d, transpose_b=True)
            self._compile_metrics.update_state(tf.range(tf.shape(q)[0]), scores)
        logs = self.get_metrics_result()
        if keras_symbolic_build_shim_needed() and in_multi_worker_mode(self.distribute_strategy):
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}  # see the shim's note
        return logs

    def _check_compiled(self):
        if self.loss_fn is None:
            raise RuntimeError("call compile(optimizer, loss=SamToNeLoss(...)) before fit")

    # ---------------------------------------------------------------- encoding
    def query_tokenizer(self):
        """The backbone's tokenizer for queries (``query_max_length`` tokens, after
        ``query_prompt``)."""
        return with_prompt(self.backbone.make_tokenizer(self.query_max_length),
                           self.query_prompt)

    def document_tokenizer(self):
        """The backbone's tokenizer for documents (``document_max_length`` tokens,
        after ``document_prompt``)."""
        return with_prompt(self.backbone.make_tokenizer(self.document_max_length),
                           self.document_prompt)

    def encode_queries(self, inputs, batch_size=64):
        """Strings or a token dict of arrays → float32 numpy [N, dim], L2-normalised."""
        return self._encode("query", inputs, batch_size)

    def encode_documents(self, inputs, batch_size=64):
        """Strings (documents as ``title + " " + text``) or a token dict → [N, dim]."""
        return self._encode("document", inputs, batch_size)

    def _encode(self, side, inputs, batch_size):
        return encode_side(self, side, inputs, batch_size)

    def release_encode_functions(self):
        """Drops the traced functions that ``encode_queries`` / ``encode_documents`` keep
        (their graphs and kernels), e.g. between an evaluation and training; the next
        encode traces again, once per side. Weights and tokenizers stay."""
        self._encode_functions.clear()

