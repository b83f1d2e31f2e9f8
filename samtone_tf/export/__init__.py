"""The reusable SavedModel (raw strings in, L2-normalised embeddings out) and its reader."""

from samtone_tf.export.saved_model import SavedModelEncoder, export_saved_model

__all__ = ["SavedModelEncoder", "export_saved_model"]
