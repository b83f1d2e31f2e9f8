"""Keras callbacks: the paper's tower analysis, watched while training.

:class:`TowerAlignment` encodes a fixed sample of held-out (query, positive document)
pairs with both towers every ``every_n_steps`` optimizer steps and records:

* ``tower_probe_accuracy``: 5-fold cross-validated accuracy of a logistic-regression
  probe telling query embeddings from document embeddings (0.5 = one mixed cloud,
  1.0 = two separable clouds; :func:`samtone_tf.training.alignment.tower_separation`);
* ``tower_centroid_cosine``: cos(mean of the query embeddings, mean of the document
  embeddings);
* ``top1_similarity``: mean over queries of the highest s(qᵢ, dⱼ) among the sample's
  documents;
* ``mean_query_query`` / ``mean_query_document``: means of s(qᵢ, qⱼ) and s(qᵢ, dⱼ),
  i ≠ j.

They go to ``callback.history`` ({"step": [...], name: [...]}), to TensorBoard
(``log_dir``, with an optional t-SNE image) and, with ``path``, to a JSON file that a
resumed run continues (entries after the resumed step are dropped).

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> q = rng.normal(size=(40, 8)) + 3.0; d = rng.normal(size=(40, 8)) - 3.0
>>> q /= np.linalg.norm(q, axis=1, keepdims=True); d /= np.linalg.norm(d, axis=1, keepdims=True)
>>> numbers = alignment_metrics(q, d)
>>> numbers["tower_probe_accuracy"], numbers["tower_centroid_cosine"] < -0.5
(1.0, True)
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np

from samtone_tf.files import write_json_atomic
from samtone_tf.training.alignment import tower_separation

METRICS = ("tower_probe_accuracy", "tower_centroid_cosine", "top1_similarity",
           "mean_query_query", "mean_query_document")


def alignment_metrics(query_embeddings, document_embeddings, seed=0, separation=None):
    """The numbers of the module docstring for row-aligned (query, document) pairs.
    ``separation``: :func:`samtone_tf.training.alignment.tower_separation` of the same pairs when
    the caller already has it (the probe is the costly part)."""
    q = np.asarray(query_embeddings, np.float64)
    d = np.asarray(document_embeddings, np.float64)
    off = ~np.eye(len(q), dtype=bool)
    q_mean, d_mean = q.mean(axis=0), d.mean(axis=0)
    if separation is None:
        separation = tower_separation(q, d, seed, tsne=False)
    return {
        "tower_probe_accuracy": separation["probe_accuracy"],
        "tower_centroid_cosine": float(q_mean @ d_mean / max(
            np.linalg.norm(q_mean) * np.linalg.norm(d_mean), 1e-12)),
        "top1_similarity": float((q @ d.T).max(axis=1).mean()),
        "mean_query_query": float((q @ q.T)[off].mean()),
        "mean_query_document": float((q @ d.T)[off].mean()),
    }


class TowerAlignment(keras.callbacks.Callback):
    """Tower alignment numbers every ``every_n_steps`` steps (see the module docstring).

    Args:
        pairs: [(query text, positive document text), ...], held out from training
            (e.g. :func:`samtone_tf.training.alignment.sample_pairs` of the evaluation split).
        every_n_steps: optimizer steps between measurements (also at step 0, before
            the first update, and after the last step).
        log_dir: TensorBoard folder (scalars under ``alignment/``); None: none.
        path: JSON file holding the record, rewritten atomically after each
            measurement; a resumed run reads it and continues.
        tsne: also write a t-SNE image of both towers to TensorBoard each time.
        seed: for the probe's folds and the t-SNE.
    """

    def __init__(self, pairs, every_n_steps=100, log_dir=None, path=None, tsne=False,
                 seed=0, batch_size=64):
        super().__init__()
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or \
                every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
        if len(pairs) < 10:
            raise ValueError(f"TowerAlignment needs at least 10 pairs, got {len(pairs)}")
        self.queries = [q for q, _ in pairs]
        self.documents = [d for _, d in pairs]
        self.every_n_steps, self.log_dir, self.path = every_n_steps, log_dir, path
        self.tsne, self.seed, self.batch_size = tsne, seed, batch_size
        self.history = {"step": [], **{name: [] for name in METRICS}}
        self.seconds = []  # wall time of each measurement (its cost)
        self._writer = None

    def _step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def measure(self, step):
        """Encodes the pairs, records the numbers at ``step``; returns them (the
        recorded ones when ``step`` was measured already, e.g. the last step of a run
        that is also a multiple of ``every_n_steps``)."""
        if step in self.history["step"]:
            at = self.history["step"].index(step)
            return {name: self.history[name][at] for name in METRICS}

        start = time.perf_counter()
        q = self.model.encode_queries(self.queries, batch_size=self.batch_size)
        d = self.model.encode_documents(self.documents, batch_size=self.batch_size)
        draw = self.tsne and self.log_dir is not None
        separation = tower_separation(q, d, self.seed, tsne=draw)
        numbers = alignment_metrics(q, d, self.seed, separation)
        self.history["step"].append(step)
        for name in METRICS:
            self.history[name].append(numbers[name])
        if self.log_dir is not None:
            self._write_summaries(step, numbers, separation["tsne"] if draw else None, len(q))
        if self.path is not None:
            write_json_atomic(self.path, self.history)
        self.seconds.append(time.perf_counter() - start)
        return numbers

    def on_train_begin(self, logs=None):
        step = self._step()
        if self.path is not None and os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as handle:
                saved = json.load(handle)
            keep = sum(1 for s in saved.get("step", []) if s <= step)
            self.history = {key: list(saved.get(key, []))[:keep] for key in self.history}
        if step == 0 or step % self.every_n_steps == 0:
            self.measure(step)

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        last = self.history["step"][-1] if self.history["step"] else -1
        if step // self.every_n_steps > last // self.every_n_steps and step > last:
            self.measure(step)

    def on_train_end(self, logs=None):
        self.measure(self._step())
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_summaries(self, step, numbers, coords, n):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=step):
            for name, value in numbers.items():
                tf.summary.scalar(f"alignment/{name}", value)
            if coords is not None:
                tf.summary.image("alignment/tsne", _tsne_image(coords, n, numbers)[None])
        self._writer.flush()


def _tsne_image(coords, n, numbers):
    """A t-SNE scatter (``coords``: n queries then n documents) as uint8 [H, W, 4]."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    fig, axis = plt.subplots(figsize=(4, 4))
    axis.scatter(coords[:n, 0], coords[:n, 1], s=5, label="query tower")
    axis.scatter(coords[n:, 0], coords[n:, 1], s=5, label="document tower")
    axis.set_title(f"probe accuracy {numbers['tower_probe_accuracy']:.3f}")
    axis.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return tf.image.decode_png(buffer.getvalue(), channels=4)
