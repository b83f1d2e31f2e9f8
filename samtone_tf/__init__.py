"""samtone_tf: dual-encoder retrieval training with the SamToNe loss (TensorFlow / Keras 3).

The public API (imported lazily, so ``import samtone_tf`` and ``samtone --help`` stay
fast)::

    from samtone_tf import DualEncoder, SamToNeLoss            # model and loss
    from samtone_tf import get_backbone, minilm, SmallTransformer, HFBert, KerasHubBert, T5Encoder
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
    "Tower": "samtone_tf.towers",
    "get_backbone": "samtone_tf.backbones",
    "minilm": "samtone_tf.backbones",
    "SmallTransformer": "samtone_tf.backbones",
    "HFBert": "samtone_tf.backbones",
    "KerasHubBert": "samtone_tf.backbones",
    "T5Encoder": "samtone_tf.backbones",
    "WarmupLinearDecay": "samtone_tf.schedules",
    "load_collection": "samtone_tf.data.loaders",
    "training_dataset": "samtone_tf.data.pipeline",
    "dataset_for": "samtone_tf.data.pipeline",
    "examples_from_qrels": "samtone_tf.data.pipeline",
    "Collection": "samtone_tf.data.common",
    "Document": "samtone_tf.data.common",
    "mine_hard_negatives": "samtone_tf.data.runs",
    "read_trec_run": "samtone_tf.data.runs",
    "evaluate_model": "samtone_tf.evaluation",
    "export_saved_model": "samtone_tf.export",
    "SavedModelEncoder": "samtone_tf.export",
    "fit_resumable": "samtone_tf.reliability",
    "get_strategy": "samtone_tf.distribute",
    "load_config": "samtone_tf.config",
    "run_training": "samtone_tf.train",
    "build_index": "samtone_tf.index",
    "mine_from_model": "samtone_tf.mining",
    "mine_from_embeddings": "samtone_tf.mining",
    "mine_bm25": "samtone_tf.mining",
    "TowerAlignment": "samtone_tf.callbacks",
    "limit_arenas": "samtone_tf.heap",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'samtone_tf' has no attribute {name!r}")


def __dir__():
    return __all__
