"""The SamToNe contrastive loss ("contrastive loss with SAMe TOwer NEgatives").

Moiseev et al., "SamToNe: Improving Contrastive Loss for Dual Encoder Retrieval
Models with Same Tower Negatives", Findings of ACL 2023 (arXiv 2306.02516).

Notation: a global batch of B rows (query qᵢ, positive document dᵢ, optionally K
hard negatives hᵢₖ). Embeddings are L2-normalised, s(a, b) = a·b is the cosine
similarity and τ the temperature. Every loss below is -log(e^{pos} / Σ e^{cand}),
computed stably as logsumexp(candidates) - positive:

* ``same_tower="none"`` (standard in-batch softmax)::

      L_q(i) = -log e^{s(qᵢ,dᵢ)/τ} / Σ_j e^{s(qᵢ,dⱼ)/τ}

* ``same_tower="query"`` (SamToNe, the paper's default) adds the other queries::

      L_q(i) = -log e^{s(qᵢ,dᵢ)/τ} / (Σ_j e^{s(qᵢ,dⱼ)/τ} + Σ_{j≠i} e^{s(qᵢ,qⱼ)/τ})

* ``symmetric=True`` adds the document-anchored loss, summed (L = L_q + L_d)::

      L_d(i) = -log e^{s(dᵢ,qᵢ)/τ} / (Σ_j e^{s(dᵢ,qⱼ)/τ} [+ Σ_{j≠i} e^{s(dᵢ,dⱼ)/τ} if "both"])

* ``joint=True`` (GTE-style) uses one denominator per row::

      L(i) = -log e^{s(qᵢ,dᵢ)/τ} / (Σ_j e^{s(qᵢ,dⱼ)/τ} + Σ_{j≠i} e^{s(qⱼ,dᵢ)/τ}
                                    [+ Σ_{j≠i} e^{s(qᵢ,qⱼ)/τ} if "query" or "both"]
                                    [+ Σ_{j≠i} e^{s(dᵢ,dⱼ)/τ} if "both"])

* Hard negatives: every hard negative of the global batch, e^{s(qᵢ,h)/τ}, joins the
  denominator of every query-anchored term (L_q, or the joint denominator).
* Id masks: with ``document_ids`` (the id of each row's positive), a document
  candidate whose id equals dᵢ's id is not a negative for row i (other rows'
  positives, hard negatives with ``hard_negative_ids`` and, under "both", the
  same-tower documents). With ``query_ids``, a query whose id equals qᵢ's id is not
  a negative for row i (same-tower queries, and the queries of L_d / joint). The
  positive itself always stays. This removes duplicates and false negatives.

The value is the mean over the global batch. Inside a ``tf.distribute`` replica
context with more than one replica, queries, documents, hard negatives and ids
are gathered from all replicas with ``all_gather`` (whose gradient flows back to
the replica that produced each embedding); each replica scores its own rows
against the whole global batch and returns ``sum(its rows) / global batch``, so
that summing gradients over replicas (what Keras optimizers do) equals one step
on the global batch.

Example:

>>> import numpy as np
>>> from samtone_tf.losses.samtone import SamToNeLoss
>>> rng = np.random.default_rng(0)
>>> q = rng.normal(size=(4, 8)).astype("float32")
>>> d = q + 0.1 * rng.normal(size=(4, 8)).astype("float32")
>>> q /= np.linalg.norm(q, axis=1, keepdims=True)
>>> d /= np.linalg.norm(d, axis=1, keepdims=True)
>>> loss = SamToNeLoss(temperature=0.05, same_tower="query")
>>> float(loss(q, d)) < float(loss(q, d[::-1]))
True
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from samtone_tf.losses.gather import gather_global

SAME_TOWER_OPTIONS = ("none", "query", "both")
DEFAULT_TEMPERATURE = 0.05  # one default: the Python API, the config and the CLI
MIN_TEMPERATURE = 0.005
MAX_TEMPERATURE = 1.0
_MASK_VALUE = -1e9


def _shape(tensor) -> str:
    return str(tuple(tensor.shape.as_list()))


def _as_int_ids(ids):
    """Ids as int64: integers pass through, strings are fingerprinted (64-bit)."""
    ids = tf.convert_to_tensor(ids)
    if ids.dtype == tf.string:
        return tf.strings.to_hash_bucket_fast(ids, 2**63 - 1)
    if not ids.dtype.is_integer:
        raise TypeError(f"ids must be integers or strings, got dtype {ids.dtype.name}")
    return tf.cast(ids, tf.int64)


@keras.saving.register_keras_serializable(package="samtone_tf")
class SamToNeLoss(keras.layers.Layer):
    """Contrastive loss with same-tower negatives, and its in-batch metrics.

    Args:
        temperature: τ (the initial value when trainable); default
            :data:`DEFAULT_TEMPERATURE` = 0.05, the same in the config and the CLI:
            sentence-transformers' scale 20, the scale all-MiniLM-L6-v2 (the default
            tower) was trained at. t5x_retrieval trains from scratch with 0.01.
        trainable_temperature: learn τ, parametrised as log τ and clipped to
            [0.005, 1.0].
        same_tower: "none" (standard in-batch softmax), "query" (SamToNe: other
            queries join L_q's denominator) or "both" (also other documents join
            L_d's; needs ``symmetric`` or ``joint``).
        symmetric: return L_q + L_d, where L_d is anchored on the documents.
        joint: one denominator per row holding both directions (GTE-style).
        matryoshka_dims: None, or embedding sizes such as (384, 256, 128, 64): the
            loss is Σ_m L(q[:, :m] / ‖q[:, :m]‖, d[:, :m] / ‖d[:, :m]‖, ...) over the
            nested prefixes (Kusupati et al. 2022, "Matryoshka Representation
            Learning"), so truncated embeddings stay good; metrics use the first size.
        compute_metrics: update the loss / in-batch accuracy / MRR metrics on
            each call. In-batch accuracy and MRR rank the positive among the
            document candidates of L_q (in-batch documents and hard negatives).

    Call arguments:
        query_embeddings: [B, D] float, L2-normalised.
        document_embeddings: [B, D] float, L2-normalised, row i the positive of query i.
        hard_negative_embeddings: optional [B, K, D] float.
        query_ids, document_ids: optional [B] int or string ids.
        hard_negative_ids: optional [B, K] ids of the hard negatives, in the same
            id space as ``document_ids``.

    Returns:
        Scalar: the mean loss over the global batch (see the module docstring
        for its per-replica share under a distribution strategy).

    bf16/fp16 embeddings are upcast to float32; float64 embeddings are kept in
    float64.
    """

    def __init__(
        self,
        temperature: float = DEFAULT_TEMPERATURE,
        trainable_temperature: bool = False,
        same_tower: str = "query",
        symmetric: bool = False,
        joint: bool = False,
        matryoshka_dims=None,
        binary_weight: float = 0.0,
        compute_metrics: bool = True,
        name: str = "samtone_loss",
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("autocast", False)  # we upcast bf16/fp16 ourselves, keep float64
        super().__init__(name=name, **kwargs)
        temperature = self.check_arguments(temperature, trainable_temperature, same_tower,
                                           symmetric, joint, matryoshka_dims, binary_weight)
        self.binary_weight = float(binary_weight)
        self.matryoshka_dims = None if matryoshka_dims is None else [
            int(m) for m in matryoshka_dims]
        self.initial_temperature = temperature
        self.trainable_temperature = bool(trainable_temperature)
        self.same_tower = same_tower
        self.symmetric = bool(symmetric)
        self.joint = bool(joint)
        self.compute_metrics = bool(compute_metrics)
        self.log_temperature = self.add_weight(
            name="log_temperature",
            shape=(),
            initializer=keras.initializers.Constant(math.log(temperature)),
            trainable=self.trainable_temperature,
            dtype="float32",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="in_batch_accuracy")
        self.mrr_tracker = keras.metrics.Mean(name="in_batch_mrr")
        self.built = True

    @staticmethod
    def check_arguments(temperature=DEFAULT_TEMPERATURE, trainable_temperature=False,
                        same_tower="query", symmetric=False, joint=False, matryoshka_dims=None,
                        binary_weight=0.0):
        """Raises ValueError naming the first invalid argument; returns τ as a float.
        (The one place they are validated; the job configuration calls it too, without
        creating any TensorFlow state.)"""
        if same_tower not in SAME_TOWER_OPTIONS:
            raise ValueError(
                f"same_tower must be one of {SAME_TOWER_OPTIONS}, got {same_tower!r}"
            )
        if same_tower == "both" and not (symmetric or joint):
            raise ValueError(
                'same_tower="both" adds document-document negatives to the '
                "document-anchored loss; it needs symmetric=True or joint=True"
            )
        if symmetric and joint:
            raise ValueError(
                "symmetric=True and joint=True are exclusive: the joint denominator "
                "already holds both directions"
            )
        if matryoshka_dims is not None and (
                not isinstance(matryoshka_dims, (list, tuple)) or not matryoshka_dims
                or any(isinstance(m, bool) or not isinstance(m, int) or m <= 0
                       for m in matryoshka_dims)
                or len(set(matryoshka_dims)) != len(matryoshka_dims)):
            raise ValueError(f"matryoshka_dims must be null or a list of distinct positive "
                             f"integers, got {matryoshka_dims!r}")
        if (isinstance(binary_weight, bool) or not isinstance(binary_weight, (int, float))
                or not math.isfinite(binary_weight) or binary_weight < 0):
            raise ValueError(f"binary_weight must be a finite number >= 0, got {binary_weight!r}")
        temperature = float(temperature)
        if not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
            raise ValueError(
                f"temperature must be in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}], "
                f"got {temperature}"
            )
        return temperature

    @property
    def temperature(self):
        """τ as a float32 scalar tensor (see ``inverse_temperature``)."""
        return 1.0 / self.inverse_temperature(tf.float32)

    def inverse_temperature(self, dtype=tf.float32):
        """1/τ in ``dtype``: the exact constant when τ is fixed, else
        1 / clip(exp(log τ), 0.005, 1.0) from the trainable variable."""
        if not self.trainable_temperature:
            return tf.constant(1.0 / self.initial_temperature, dtype)
        log_tau = tf.cast(tf.convert_to_tensor(self.log_temperature), dtype)
        return 1.0 / tf.clip_by_value(tf.exp(log_tau), MIN_TEMPERATURE, MAX_TEMPERATURE)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.mrr_tracker]

    def get_config(self):
        config = super().get_config()
        config.update(
            temperature=self.initial_temperature,
            trainable_temperature=self.trainable_temperature,
            same_tower=self.same_tower,
            symmetric=self.symmetric,
            joint=self.joint,
            matryoshka_dims=self.matryoshka_dims,
            binary_weight=self.binary_weight,
            compute_metrics=self.compute_metrics,
        )
        return config

    # ------------------------------------------------------------------ inputs
    def _check_inputs(self, q, d, h, query_ids, document_ids, hard_negative_ids):
        if q.shape.rank != 2 or d.shape.rank != 2:
            raise ValueError(
                "query_embeddings and document_embeddings must be [batch, dim]; got "
                f"query_embeddings {_shape(q)} and document_embeddings {_shape(d)}"
            )
        if not q.shape.is_compatible_with(d.shape):
            raise ValueError(
                "query_embeddings and document_embeddings must have the same shape; "
                f"got {_shape(q)} and {_shape(d)}"
            )
        if h is not None:
            if h.shape.rank != 3 or not h.shape[:1].is_compatible_with(q.shape[:1]) or (
                not h.shape[2:].is_compatible_with(q.shape[1:])
            ):
                raise ValueError(
                    "hard_negative_embeddings must be [batch, num_negatives, dim] "
                    f"matching query_embeddings {_shape(q)}; got {_shape(h)}"
                )
        for label, ids in (("query_ids", query_ids), ("document_ids", document_ids)):
            if ids is not None and (
                ids.shape.rank != 1 or not ids.shape.is_compatible_with(q.shape[:1])
            ):
                raise ValueError(
                    f"{label} must be [batch] matching query_embeddings {_shape(q)}; "
                    f"got {_shape(ids)}"
                )
        if hard_negative_ids is not None:
            if h is None:
                raise ValueError("hard_negative_ids given without hard_negative_embeddings")
            if not hard_negative_ids.shape.is_compatible_with(h.shape[:2]):
                raise ValueError(
                    "hard_negative_ids must be [batch, num_negatives] matching "
                    f"hard_negative_embeddings {_shape(h)}; got {_shape(hard_negative_ids)}"
                )

    # -------------------------------------------------------------------- call
    def call(
        self,
        query_embeddings,
        document_embeddings,
        hard_negative_embeddings=None,
        query_ids=None,
        document_ids=None,
        hard_negative_ids=None,
    ):
        q = tf.convert_to_tensor(query_embeddings)
        d = tf.convert_to_tensor(document_embeddings)
        h = None
        if hard_negative_embeddings is not None:
            h = tf.convert_to_tensor(hard_negative_embeddings)
        ids = [
            None if x is None else _as_int_ids(x)
            for x in (query_ids, document_ids, hard_negative_ids)
        ]
        self._check_inputs(q, d, h, *ids)
        dtype = tf.float64 if q.dtype == tf.float64 else tf.float32
        q, d = tf.cast(q, dtype), tf.cast(d, dtype)
        if h is not None:
            h = tf.cast(h, dtype)
            h = tf.reshape(h, [-1, tf.shape(h)[-1]])  # [b*K, D]
        qid, did, hid = ids
        if hid is not None:
            hid = tf.reshape(hid, [-1])
        if not self.matryoshka_dims:
            total = self._loss(q, d, h, qid, did, hid, self.compute_metrics)
        else:
            total = 0.0
            for number, m in enumerate(self.matryoshka_dims):
                if q.shape[-1] is not None and m > q.shape[-1]:
                    raise ValueError(
                        f"matryoshka_dims {m} exceeds the embedding size {q.shape[-1]}")
                cut = [None if x is None
                       else tf.math.l2_normalize(x[:, :m], axis=-1, epsilon=1e-24)
                       for x in (q, d, h)]
                total += self._loss(*cut, qid, did, hid, self.compute_metrics and number == 0)
        if self.binary_weight:
            signs = [None if x is None else _sign_bits(x) for x in (d, h)]
            total += self.binary_weight * self._loss(q, *signs, qid, did, hid, False)
        return total

    def _loss(self, q, d, h, qid, did, hid, update_metrics):
        """The loss of the module docstring on (already cast) embeddings and ids."""
        dtype = q.dtype
        local_rows = tf.shape(q)[0]
        gathered = gather_global(q, d, h, qid, did, hid)
        gq, gd, gh, gqid, gdid, ghid, offset, global_rows = gathered

        inv_tau = self.inverse_temperature(dtype)
        eye = tf.cast(
            tf.one_hot(offset + tf.range(local_rows), global_rows, dtype=tf.int32), tf.bool
        )
        no_mask = tf.zeros_like(eye)
        same_doc = no_mask if did is None else tf.equal(did[:, None], gdid[None, :])
        same_query = no_mask if qid is None else tf.equal(qid[:, None], gqid[None, :])
        doc_dup = tf.logical_and(same_doc, tf.logical_not(eye))
        query_dup = tf.logical_and(same_query, tf.logical_not(eye))

        def scores(anchor, candidates, mask):
            logits = tf.matmul(anchor, candidates, transpose_b=True) * inv_tau
            if mask is None:
                return logits
            return tf.where(mask, tf.cast(_MASK_VALUE, dtype), logits)

        q_docs = scores(q, gd, doc_dup)  # [b, B]; positive at column offset + i
        # The positive logit read off the same matmul, so that ranks compare exactly.
        positive = tf.reduce_sum(tf.where(eye, q_docs, tf.zeros_like(q_docs)), axis=1)
        q_candidates = [q_docs]
        if gh is not None:
            hard_mask = None
            if did is not None and ghid is not None:
                hard_mask = tf.equal(did[:, None], ghid[None, :])
            q_candidates.append(scores(q, gh, hard_mask))
        document_candidates = list(q_candidates)  # for the in-batch metrics
        if self.same_tower in ("query", "both"):
            q_candidates.append(scores(q, gq, tf.logical_or(eye, same_query)))
        d_candidates = []
        if self.symmetric or self.joint:
            # Queries for the document anchor: in L_d the positive q_i stays; in the
            # joint denominator s(q_i, d_i) is already counted through q_docs.
            d_queries_mask = query_dup if self.symmetric else tf.logical_or(eye, same_query)
            d_candidates.append(scores(d, gq, d_queries_mask))
            if self.same_tower == "both":
                d_candidates.append(scores(d, gd, tf.logical_or(eye, same_doc)))

        if self.joint:
            per_row = _logsumexp(q_candidates + d_candidates) - positive
        else:
            per_row = _logsumexp(q_candidates) - positive
            if self.symmetric:
                per_row += _logsumexp(d_candidates) - positive

        if update_metrics:
            doc_logits = tf.concat(document_candidates, axis=1)
            rank = 1 + tf.reduce_sum(
                tf.cast(doc_logits > positive[:, None], tf.int32), axis=1
            )
            rank = tf.cast(rank, tf.float32)
            self.loss_tracker.update_state(tf.cast(per_row, tf.float32))
            self.accuracy_tracker.update_state(tf.cast(tf.equal(rank, 1.0), tf.float32))
            self.mrr_tracker.update_state(1.0 / rank)
        return tf.reduce_sum(per_row) / tf.cast(global_rows, dtype)


def _sign_bits(x):
    """sign(x) / √D with sign(0) = −1 (the binary index's bits), gradient straight
    through: the forward value is the ±1 vector, the backward pass the identity."""
    scale = tf.math.rsqrt(tf.cast(tf.shape(x)[-1], x.dtype))
    signs = tf.where(x > 0, scale, -scale)
    return x + tf.stop_gradient(signs - x)


def _logsumexp(parts):
    return tf.reduce_logsumexp(tf.concat(parts, axis=1), axis=1)


