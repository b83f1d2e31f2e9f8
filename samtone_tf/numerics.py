"""Numeric guards on a model's weights (before a checkpoint, an export, a save)."""

from __future__ import annotations

import tensorflow as tf

from samtone_tf.errors import TrainingStopped


class NonFiniteWeightsError(TrainingStopped):
    """A weight holds NaN or Inf."""


def check_finite_weights(model, where="the model"):
    """Raises NonFiniteWeightsError naming the first weight that holds NaN/Inf.

    Checked by TensorFlow in the weight's own dtype, with no host copy: earlier each
    weight was copied to float64 NumPy (94 MB for MiniLM's word embeddings), and the
    default job's check and save after its last step raised its peak by 0.13 GB
    (docs/RESULTS.md). Integer weights are always finite."""
    bad = [getattr(w, "path", None) or w.name for w in model.weights if not _finite(w)]
    if bad:
        raise NonFiniteWeightsError(
            f"{where}: {len(bad)} weight(s) hold NaN/Inf (first: {bad[0]}); refusing to save "
            "or export them")


def _finite(weight):
    value = weight.value if hasattr(weight, "value") else weight
    if not tf.as_dtype(value.dtype).is_floating:
        return True
    return bool(tf.reduce_all(tf.math.is_finite(value)))
