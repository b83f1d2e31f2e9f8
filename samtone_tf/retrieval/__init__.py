"""Retrieval with a trained model: corpus encoding (chunked, cached, sharded), exact top-k
search, IR metrics, BM25, hard-negative mining, and the retrieval SavedModel (index)."""

from samtone_tf.retrieval.bm25 import bm25_run, bm25_scores
from samtone_tf.retrieval.corpus import encode_corpus, model_fingerprint
from samtone_tf.retrieval.encoder import encode_in_shards
from samtone_tf.retrieval.evaluation import evaluate_index, evaluate_model
from samtone_tf.retrieval.index import build_index, load_index
from samtone_tf.retrieval.metrics import evaluate_run, markdown_table
from samtone_tf.retrieval.mining import mine_bm25, mine_from_embeddings, mine_from_model
from samtone_tf.retrieval.quantization import quantize, truncate
from samtone_tf.retrieval.search import exact_search

__all__ = ["bm25_run", "bm25_scores", "build_index", "encode_corpus", "encode_in_shards",
           "evaluate_index", "evaluate_model", "evaluate_run", "exact_search", "load_index",
           "markdown_table", "mine_bm25", "mine_from_embeddings", "mine_from_model",
           "model_fingerprint", "quantize", "truncate"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # samtone_tf's Keras classes, if Keras was first imported from here
