"""The ``samtone`` command line: :mod:`~samtone_tf.cli.parser` (the flags), one module per
command (``train``, ``evaluate``, ``export``, ``index``, ``mine``, ``analyze``), the model
loading they share (:mod:`~samtone_tf.cli.models`) and :func:`main`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO/WARNING lines

from samtone_tf.cli.main import main  # noqa: E402

__all__ = ["main"]
