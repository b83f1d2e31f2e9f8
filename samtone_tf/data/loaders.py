"""One entry point for every collection format ``samtone train`` / ``eval`` accept.

=============  ==========================================================================
format         path
=============  ==========================================================================
``beir``       a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv; .gz too)
``msmarco``    a folder of MS MARCO passage files (collection.tsv, queries.<split>.tsv,
               qrels.<split>.tsv)
``multireqa``  a folder holding an MRQA file (``SQuAD.jsonl.gz``) and MultiReQA's
               ``candidates.json.gz`` for the same dataset (split name free)
``tfds``       a prepared TFDS name of samtone_tf's builders, e.g. ``beir/scifact``
               (reads ``<name>-pairs`` and ``<name>-corpus`` with download=False;
               ``data_dir`` from $TFDS_DATA_DIR)
=============  ==========================================================================
"""

from __future__ import annotations

import os

from samtone_tf.data.beir import load_beir
from samtone_tf.data.common import Collection, Document
from samtone_tf.data.msmarco import load_msmarco
from samtone_tf.data.multireqa import convert_multireqa
from samtone_tf.errors import ConfigError

FORMATS = ("beir", "msmarco", "multireqa", "tfds")


def load_collection(path, split="test", data_format="beir"):
    """A :class:`Collection` of ``path`` with the queries judged in ``split``. A path that
    is a collection store (``samtone prepare``), or a BEIR / MS MARCO folder whose corpus
    file holds 64 MB or more, is read through a store: the corpus stays on disk,
    memory-mapped (:mod:`samtone_tf.data.store`)."""
    from samtone_tf.data.store import is_store, wants_store
    from samtone_tf.data.store_build import load_stored

    if is_store(path) or wants_store(path, data_format):
        return load_stored(path, split, data_format)
    if data_format == "beir":
        return load_beir(path, split)
    if data_format == "msmarco":
        return load_msmarco(path, split)
    if data_format == "multireqa":
        mrqa = [f for f in sorted(os.listdir(path)) if f.endswith((".jsonl", ".jsonl.gz"))]
        if not mrqa or not os.path.exists(os.path.join(path, "candidates.json.gz")):
            raise FileNotFoundError(f"{path} needs an MRQA .jsonl(.gz) file and "
                                    "candidates.json.gz")
        dataset = mrqa[0].split(".")[0]
        return convert_multireqa(os.path.join(path, mrqa[0]),
                                 os.path.join(path, "candidates.json.gz"), dataset, split)
    if data_format == "tfds":
        return _from_tfds(path, split)
    raise ConfigError(f"data format must be one of {FORMATS}, got {data_format!r}")


def _from_tfds(name, split):
    import tensorflow_datasets as tfds

    from samtone_tf.data import tfds_builders  # noqa: F401  (registers the builders)

    data_dir = os.environ.get("TFDS_DATA_DIR")
    corpus = {}
    for row in tfds.load(f"{name}-corpus", split="corpus", download=False,
                         data_dir=data_dir).as_numpy_iterator():
        corpus[row["document_id"].decode()] = Document(row["title"].decode(), row["text"].decode())
    queries, qrels = {}, {}
    for row in tfds.load(f"{name}-pairs", split=split, download=False,
                         data_dir=data_dir).as_numpy_iterator():
        query_id, doc_id = row["query_id"].decode(), row["document_id"].decode()
        queries[query_id] = row["query"].decode()
        qrels.setdefault(query_id, {})[doc_id] = int(row["relevance"])
    return Collection(corpus, queries, qrels, split, name)
