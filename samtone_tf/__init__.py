"""samtone_tf: dual-encoder retrieval training with the SamToNe loss (TensorFlow / Keras 3)."""

__version__ = "0.1.0"
