"""Collections and training input: readers (BEIR, MS MARCO, MultiReQA, TFDS) into one
:class:`Collection`, TREC run files, and the tf.data pipeline that tokenizes no-duplicate
global batches for ``fit``."""

from samtone_tf.data.common import Collection, Document
from samtone_tf.data.loaders import load_collection
from samtone_tf.data.pipeline import dataset_for, examples_from_qrels, training_dataset
from samtone_tf.data.runs import mine_hard_negatives, read_trec_run, write_trec_run

__all__ = ["Collection", "Document", "dataset_for", "examples_from_qrels", "load_collection",
           "mine_hard_negatives", "read_trec_run", "training_dataset", "write_trec_run"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # samtone_tf's Keras classes, if Keras was first imported from here
