"""The ``samtone train`` job: typed configuration, the run folder (manifest, lock), the
memory policy, the job itself and its plots."""

from samtone_tf.runs.config import load_config
from samtone_tf.runs.job import load_run_model, run_training

__all__ = ["load_config", "load_run_model", "run_training"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # samtone_tf's Keras classes, if Keras was first imported from here
