"""Training around Keras ``fit``: distribution strategies from a string, resumable
training with numeric guards, the warm-up schedule and the tower-alignment callback."""

from samtone_tf.training.callbacks import TowerAlignment
from samtone_tf.training.distribute import get_strategy
from samtone_tf.training.resumable import fit_resumable
from samtone_tf.training.schedules import WarmupLinearDecay

__all__ = ["TowerAlignment", "WarmupLinearDecay", "fit_resumable", "get_strategy"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # the other Keras classes, if Keras was first imported from here
