"""Export a DualEncoder as a TF-Hub-style reusable SavedModel that takes raw strings.

Contract of the SavedModel (see savedmodels/README.md):

* serving signatures ``encode_query``, ``encode_document`` and ``serving_default``
  (= ``encode_query``): one input ``texts`` (tf.string, [None]) and one output
  ``embeddings`` (float32 [None, dim], L2-normalised);
* callables ``query_encoder(texts, training=False)``, ``document_encoder(...)``
  and ``__call__`` (= ``query_encoder``), following TF-Hub's reusable SavedModel
  API, with ``variables``, ``trainable_variables`` and ``regularization_losses``;
* the tokenizer runs inside the graph; consumers ``import tensorflow_text`` first
  and need neither samtone_tf nor pickle;
* each variable is stored once (SDE: one tower's weights; ADE: both towers');
* ``assets/samtone_config.json``: architecture, embedding size, similarity,
  normalisation, max lengths, temperature and the training configuration.

Written atomically: into a temporary folder beside the target (``.samtone-tmp-<name>.*``,
removed by the next export of the same target if a kill left it), then renamed; the
folder gets the usual permissions. A model with a NaN/Inf weight is refused.
"""

from __future__ import annotations

import contextlib
import json
import os

import tensorflow as tf

from samtone_tf.batching import length_sorted_batches
from samtone_tf.errors import DataError
from samtone_tf.files import check_output, check_replaceable, write_folder_atomic
from samtone_tf.internals import AutoTrackable
from samtone_tf.numerics import check_finite_weights
from samtone_tf.tokenizers.text_ops import tensorflow_text

CONFIG_ASSET = "samtone_config.json"
FORMAT = "samtone_tf dual encoder SavedModel v1"
SIGNATURES = ("encode_query", "encode_document", "serving_default")


def _unique_variables(variables):
    seen, out = set(), []
    for variable in variables:
        value = getattr(variable, "value", variable)  # Keras 3 variable → tf.Variable
        if id(value) not in seen:
            seen.add(id(value))
            out.append(value)
    return out


class _Holder:
    """Plain attributes that tf.Module does not track."""

    def __init__(self, query_tower, document_tower, query_tokenizer, document_tokenizer):
        self.query_tower = query_tower
        self.document_tower = document_tower
        self.query_tokenizer = query_tokenizer
        self.document_tokenizer = document_tokenizer


class _EncoderModule(AutoTrackable):
    """What gets saved: towers' variables, in-graph tokenizers, encode functions.

    (AutoTrackable rather than tf.Module: ``variables`` etc. must be plain saved
    attributes for the TF-Hub reusable SavedModel API.)
    """

    def __init__(self, model, query_tokenizer, document_tokenizer):
        super().__init__()
        # The Keras layers are kept out of the object graph (a plain holder is not
        # tracked): only their tf.Variables are saved, once each. Tracking the Keras
        # layers too would store every weight twice (Keras variable + tf.Variable).
        self._untracked = _Holder(model.query_tower, model.document_tower,
                                  query_tokenizer, document_tokenizer)
        # tokenizer resources (vocabulary tables) must be tracked to be saved
        self._tokenizer_modules = [getattr(t, "_tokenizer", None)
                                   for t in (query_tokenizer, document_tokenizer)]
        all_variables = _unique_variables(model.query_tower.weights +
                                          model.document_tower.weights)
        trainable = {id(v) for v in _unique_variables(
            model.query_tower.trainable_weights + model.document_tower.trainable_weights)}
        self.variables = all_variables
        # dropout seed-generator states are captured by the training=True functions
        weight_ids = {id(v) for v in all_variables}
        self._state_variables = [v for v in _unique_variables(
            model.query_tower.variables + model.document_tower.variables)
            if id(v) not in weight_ids]
        self.trainable_variables = [v for v in all_variables if id(v) in trainable]
        self.regularization_losses = []

        spec = tf.TensorSpec([None], tf.string, name="texts")

        held = self._untracked

        @tf.function
        def query_encoder(texts, training=False):
            return held.query_tower(held.query_tokenizer(texts), training=training)

        if shares_query_functions(model, query_tokenizer, document_tokenizer):
            document_encoder = query_encoder
        else:
            @tf.function
            def document_encoder(texts, training=False):
                return held.document_tower(held.document_tokenizer(texts), training=training)

        for function in {id(f): f for f in (query_encoder, document_encoder)}.values():
            for training in (False, True):
                function.get_concrete_function(spec, training)
        self.query_encoder = query_encoder
        self.document_encoder = document_encoder
        self.__call__ = query_encoder

        @tf.function(input_signature=[spec])
        def encode_query(texts):
            return {"embeddings": query_encoder(texts, training=False)}

        @tf.function(input_signature=[spec])
        def encode_document(texts):
            return {"embeddings": document_encoder(texts, training=False)}

        self.encode_query = encode_query
        self.encode_document = encode_document


def shares_query_functions(model, query_tokenizer, document_tokenizer):
    """True when documents go through the queries' functions: one tower (SDE) and one
    tokenizer. Then the tower is traced once per ``training`` value instead of twice,
    which took the export's peak from +0.37 to +0.22 GB over the weights (MiniLM after
    training; docs/RESULTS.md), and the SavedModel stores one copy."""
    return model.query_tower is model.document_tower and query_tokenizer is document_tokenizer


def export_config(model, training_config=None):
    """The assets JSON: what a consumer needs to know about the embeddings."""
    loss = getattr(model, "loss_fn", None)
    backbone = model.backbone
    return {
        "format": FORMAT,
        "architecture": model.architecture,
        "backbone": repr(backbone),
        "embedding_dim": int(model.embedding_dim),
        "similarity": "cosine (dot product of L2-normalised embeddings)",
        "normalization": "l2",
        "pooling": model.pooling,
        "query_max_length": model.query_max_length,
        "document_max_length": model.document_max_length,
        # applied inside the signatures: a client sends the raw text
        "query_prompt": model.query_prompt, "document_prompt": model.document_prompt,
        "document_text": 'title + " " + text (text alone when the title is empty)',
        "temperature": None if loss is None else float(loss.temperature.numpy()),
        "loss": None if loss is None else loss.get_config(),
        "training_config": training_config or {},
        "signatures": {name: {"inputs": {"texts": "tf.string [None]"},
                              "outputs": {"embeddings": f"float32 [None, {model.embedding_dim}]"}}
                       for name in SIGNATURES},
        "requires": "import tensorflow_text before loading",
    }


def export_saved_model(model, output, training_config=None, overwrite=False):
    """Writes ``model`` as a SavedModel at ``output`` (atomically); returns ``output``.

    Refuses to replace an existing ``output`` unless ``overwrite=True``.
    """
    output = os.path.abspath(output)
    check_export_output(output, overwrite=overwrite)
    check_finite_weights(model, f"export to {output}")
    query_tokenizer = model.query_tokenizer()
    same = (model.query_max_length == model.document_max_length
            and model.query_prompt == model.document_prompt)
    document_tokenizer = query_tokenizer if same else model.document_tokenizer()

    def fill(folder):
        with _without_remat(model):  # saving traces the functions again
            module = _EncoderModule(model, query_tokenizer, document_tokenizer)
            tf.saved_model.save(module, folder, signatures={
                "encode_query": module.encode_query,
                "encode_document": module.encode_document,
                "serving_default": module.encode_query,
            })
        write_assets(folder, {CONFIG_ASSET: export_config(model, training_config)})

    return write_folder_atomic(output, fill)


@contextlib.contextmanager
def _without_remat(model):
    """The towers trace without remat inside the block: remat is a memory option of
    this process' training, and its ``tf.recompute_grad`` gradient is one a SavedModel
    cannot store (loading warned "unsaved custom gradients", and fine-tuning the export
    through its ``training=True`` function could not differentiate)."""
    encoders = {id(t.encoder): t.encoder for t in (model.query_tower, model.document_tower)}
    remat = {key: encoder.remat for key, encoder in encoders.items()}
    try:
        for encoder in encoders.values():
            encoder.remat = False
        yield
    finally:
        for key, encoder in encoders.items():
            encoder.remat = remat[key]


def is_export(path):
    """True when ``path`` is a SavedModel written by :func:`export_saved_model` (its
    assets name the format; a retrieval index is not one)."""
    try:
        with open(os.path.join(path, "assets", CONFIG_ASSET), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return False
    return (isinstance(config, dict) and config.get("format") == FORMAT
            and not os.path.exists(os.path.join(path, "assets", "samtone_index.json")))


def check_export_output(output, inputs=(), overwrite=False):
    """Refuses an export target that is or holds an input, lies inside one, is a link,
    is a file, or exists and is not a SavedModel this module wrote (``overwrite``
    replaces only those). Writes nothing."""
    check_output(output, inputs, replaces_folder=True)
    check_replaceable(output, overwrite, is_export, "a SavedModel written by samtone export")


def write_assets(folder, files):
    """JSON files ({name: content}) into ``folder``/assets (a SavedModel's assets)."""
    assets = os.path.join(folder, "assets")
    os.makedirs(assets, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(assets, name), "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2, default=str)


class SavedModelEncoder:
    """A reloaded SavedModel with the ``encode_queries`` / ``encode_documents``
    interface of DualEncoder (for evaluation and analysis)."""

    def __init__(self, path):
        tensorflow_text()  # registers the tokenizer ops

        self.path = path
        try:
            self.module = tf.saved_model.load(path)
        except (tf.errors.OpError, ValueError, KeyError, AttributeError) as error:
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            raise DataError(f"{path}: the SavedModel cannot be loaded ({type(error).__name__}: "
                            f"{reason})") from None
        config_path = os.path.join(path, "assets", CONFIG_ASSET)
        self.config = {}
        if os.path.exists(config_path):
            try:
                with open(config_path, encoding="utf-8") as handle:
                    self.config = json.load(handle)
            except ValueError as error:
                raise DataError(f"{config_path}: not JSON ({error})") from None

    def __repr__(self):
        return f"SavedModelEncoder({self.path!r})"

    @property
    def weights(self):
        return list(self.module.variables)

    def _encode(self, function, texts, batch_size):
        import numpy as np

        texts = list(texts)
        out = np.zeros((len(texts), int(self.config.get("embedding_dim", 0)) or 1), "float32")
        for number, rows in enumerate(length_sorted_batches([len(t) for t in texts], batch_size)):
            embeddings = function(tf.constant([texts[i] for i in rows])).numpy()
            if number == 0:
                out = np.zeros((len(texts), embeddings.shape[1]), "float32")
            out[rows] = embeddings
        return out

    def encode_queries(self, texts, batch_size=64):
        return self._encode(self.module.query_encoder, texts, batch_size)

    def encode_documents(self, texts, batch_size=64):
        return self._encode(self.module.document_encoder, texts, batch_size)
