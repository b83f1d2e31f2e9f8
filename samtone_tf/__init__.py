"""samtone_tf: dual-encoder retrieval training with the SamToNe loss (TensorFlow / Keras 3).

The public API (imported lazily, so ``import samtone_tf`` and ``samtone --help`` stay
fast; the Keras classes register themselves when Keras is imported, so
``keras.models.load_model`` reads a saved DualEncoder after ``import samtone_tf``)::

    from samtone_tf import DualEncoder, SamToNeLoss            # model and loss
    from samtone_tf import get_backbone, minilm, SmallTransformer, HFBert, HFXLMRoberta, HFGemma3
    from samtone_tf import HFQwen3, KerasHubBert, T5Encoder
    from samtone_tf import load_collection, dataset_for         # a folder → tf.data for fit
    from samtone_tf import evaluate_model, export_saved_model, SavedModelEncoder
    from samtone_tf import load_config, run_training              # the `samtone train` job
    from samtone_tf import build_index                            # a retrieval SavedModel
    from samtone_tf import mine_from_model, mine_from_embeddings  # dense hard negatives
    from samtone_tf import TowerAlignment                         # tower analysis in fit
    from samtone_tf import limit_arenas    # first thing, before TensorFlow: less C-heap memory
"""

__version__ = "0.1.0"

_PUBLIC = {
    "DualEncoder": "samtone_tf.models",
    "SamToNeLoss": "samtone_tf.losses",
    "Tower": "samtone_tf.layers",
    "get_backbone": "samtone_tf.models",
    "minilm": "samtone_tf.models",
    "SmallTransformer": "samtone_tf.models",
    "HFBert": "samtone_tf.models",
    "HFXLMRoberta": "samtone_tf.models",
    "HFGemma3": "samtone_tf.models",
    "HFQwen3": "samtone_tf.models",
    "KerasHubBert": "samtone_tf.models",
    "T5Encoder": "samtone_tf.models",
    "WarmupLinearDecay": "samtone_tf.training",
    "load_collection": "samtone_tf.data",
    "training_dataset": "samtone_tf.data",
    "dataset_for": "samtone_tf.data",
    "examples_from_qrels": "samtone_tf.data",
    "Collection": "samtone_tf.data",
    "Document": "samtone_tf.data",
    "mine_hard_negatives": "samtone_tf.data",
    "read_trec_run": "samtone_tf.data",
    "evaluate_model": "samtone_tf.retrieval",
    "export_saved_model": "samtone_tf.export",
    "SavedModelEncoder": "samtone_tf.export",
    "fit_resumable": "samtone_tf.training",
    "get_strategy": "samtone_tf.training",
    "load_config": "samtone_tf.runs",
    "run_training": "samtone_tf.runs",
    "build_index": "samtone_tf.retrieval",
    "mine_from_model": "samtone_tf.retrieval",
    "mine_from_embeddings": "samtone_tf.retrieval",
    "mine_bm25": "samtone_tf.retrieval",
    "TowerAlignment": "samtone_tf.training",
    "limit_arenas": "samtone_tf.heap",
}

__all__ = sorted(_PUBLIC) + ["__version__"]

from samtone_tf.registration import register_with_keras  # noqa: E402

register_with_keras()  # keras.models.load_model finds samtone_tf's classes (registration.py)


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'samtone_tf' has no attribute {name!r}")


def __dir__():
    return __all__
