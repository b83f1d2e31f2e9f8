"""Losses: :class:`SamToNeLoss` (in-batch softmax with same-tower negatives; the formulas
are in its docstring) and the cross-replica gather it scores the global batch with."""

from samtone_tf.losses.samtone import SamToNeLoss

__all__ = ["SamToNeLoss"]
