"""Losses: :class:`SamToNeLoss` (in-batch softmax with same-tower negatives; the formulas
are in its docstring) and the cross-replica gather it scores the global batch with."""

from samtone_tf.losses.samtone import SamToNeLoss

__all__ = ["SamToNeLoss"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # the other Keras classes, if Keras was first imported from here
