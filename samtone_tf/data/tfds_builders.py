"""TensorFlow Datasets builders for the collections samtone_tf trains and evaluates on.

Each builder has two kinds of configs: ``<name>-pairs`` (one example per judged
(query, document) pair, a split per qrels file) and ``<name>-corpus`` (one example per
document, split "corpus"). Online users let TFDS download the public source; offline
users put the files in ``manual_dir`` (a BEIR folder for BEIR, the MS MARCO files, or
the MRQA + MultiReQA files), e.g.::

    import tensorflow_datasets as tfds
    from samtone_tf.data import tfds_builders  # registers the builders
    builder = tfds_builders.Beir(config="scifact-pairs", data_dir="~/tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="../shared/data/scifact"))
    ds = tfds.load("beir/scifact-pairs", split="test", data_dir="~/tfds", download=False)
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from samtone_tf.data.beir import load_beir
from samtone_tf.data.msmarco import load_msmarco
from samtone_tf.data.multireqa import convert_multireqa

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
MSMARCO_URL = "https://msmarco.z22.web.core.windows.net/msmarcoranking/collectionandqueries.tar.gz"
MRQA_URL = "https://s3.us-east-2.amazonaws.com/mrqa/release/v2/dev/{dataset}.jsonl.gz"
MULTIREQA_URL = ("https://github.com/google-research-datasets/MultiReQA/raw/master/data/dev/"
                 "{dataset}/candidates.json.gz")


def _pair_features():
    return tfds.features.FeaturesDict({
        "query_id": tfds.features.Text(), "query": tfds.features.Text(),
        "document_id": tfds.features.Text(), "document": tfds.features.Text(),
        "relevance": tfds.features.Scalar(dtype=np.int32)})


def _corpus_features():
    return tfds.features.FeaturesDict({
        "document_id": tfds.features.Text(), "title": tfds.features.Text(),
        "text": tfds.features.Text()})


def _pairs(collection):
    for query_id in sorted(collection.qrels):
        for doc_id, relevance in sorted(collection.qrels[query_id].items()):
            yield f"{query_id}|{doc_id}", {
                "query_id": query_id, "query": collection.queries[query_id],
                "document_id": doc_id, "document": collection.corpus[doc_id].full_text,
                "relevance": relevance}


def _corpus(corpus):
    for doc_id, doc in corpus.items():
        yield doc_id, {"document_id": doc_id, "title": doc.title, "text": doc.text}


class _RetrievalBuilder(tfds.core.GeneratorBasedBuilder):
    """Shared logic: subclasses say where the files are and how to load a split."""

    VERSION = tfds.core.Version("1.0.0")
    SPLITS = ("test",)

    def _info(self):
        corpus = self.builder_config.name.endswith("-corpus")
        return self.dataset_info_from_configs(
            features=_corpus_features() if corpus else _pair_features(),
            homepage="https://github.com/samtone-tf")

    def _source(self, dl_manager):
        raise NotImplementedError

    def _load(self, source, split):
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        source = self._source(dl_manager)
        if self.builder_config.name.endswith("-corpus"):
            return {"corpus": _corpus(self._load(source, self.SPLITS[0]).corpus)}
        return {split: _pairs(self._load(source, split)) for split in self.SPLITS}

    def _generate_examples(self, *args):  # generators are built in _split_generators
        raise NotImplementedError


class Beir(_RetrievalBuilder):
    """BEIR collections (scifact: train + test splits; cranfield, reqa-squad: test)."""

    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f"{name}-{kind}")
                       for name in ("scifact", "cranfield", "reqa-squad")
                       for kind in ("pairs", "corpus")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put the BEIR folder (corpus.jsonl, queries.jsonl, qrels/) " \
                                   "in manual_dir."

    @property
    def SPLITS(self):  # noqa: N802
        return ("train", "test") if self.builder_config.name.startswith("scifact") else ("test",)

    def _source(self, dl_manager):
        name = self.builder_config.name.rsplit("-", 1)[0]
        manual = dl_manager.manual_dir
        if manual and os.path.exists(os.path.join(manual, "corpus.jsonl")):
            return str(manual)
        extracted = dl_manager.download_and_extract(BEIR_URL.format(name=name))
        return os.path.join(str(extracted), name)

    def _load(self, source, split):
        return load_beir(source, split)


class MsMarcoPassage(_RetrievalBuilder):
    """MS MARCO passage ranking: dev pairs (and train pairs) + the 8.8M-passage corpus."""

    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="msmarco-pairs"),
                       tfds.core.BuilderConfig(name="msmarco-corpus")]
    SPLITS = ("train", "dev")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put collection.tsv, queries.{train,dev}.tsv and " \
                                   "qrels.{train,dev}.tsv in manual_dir."

    def _source(self, dl_manager):
        manual = dl_manager.manual_dir
        if manual and any(os.path.exists(os.path.join(manual, f"collection.tsv{ext}"))
                          for ext in ("", ".gz")):
            return str(manual)
        return str(dl_manager.download_and_extract(MSMARCO_URL))

    def _load(self, source, split):
        return load_msmarco(source, split)


class MultiReqa(_RetrievalBuilder):
    """MultiReQA SQuAD (dev → test): MRQA text + MultiReQA sentence boundaries."""

    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="squad-pairs"),
                       tfds.core.BuilderConfig(name="squad-corpus")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put SQuAD.jsonl.gz (MRQA dev) and candidates.json.gz " \
                                   "(MultiReQA data/dev/SQuAD) in manual_dir."

    def _source(self, dl_manager):
        manual = dl_manager.manual_dir
        if manual and os.path.exists(os.path.join(manual, "candidates.json.gz")):
            return (os.path.join(manual, "SQuAD.jsonl.gz"),
                    os.path.join(manual, "candidates.json.gz"))
        files = dl_manager.download({"mrqa": MRQA_URL.format(dataset="SQuAD"),
                                     "candidates": MULTIREQA_URL.format(dataset="SQuAD")})
        return str(files["mrqa"]), str(files["candidates"])

    def _load(self, source, split):
        return convert_multireqa(*source, dataset="SQuAD", split=split)
