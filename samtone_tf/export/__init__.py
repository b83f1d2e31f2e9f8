"""The reusable SavedModel (raw strings in, L2-normalised embeddings out) and its reader."""

from samtone_tf.export.saved_model import SavedModelEncoder, export_saved_model

__all__ = ["SavedModelEncoder", "export_saved_model"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # samtone_tf's Keras classes, if Keras was first imported from here
