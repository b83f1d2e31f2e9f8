"""MultiReQA: question → answer-sentence retrieval built from an MRQA file and
MultiReQA's published sentence boundaries (Guo et al. 2021, arXiv:2005.02507).

Inputs:

* the MRQA 2019 jsonl(.gz) of one dataset and split (a header line, then one record
  per context: ``{"context", "qas": [{"qid", "question", "detected_answers":
  [{"char_spans": [[start, end], ...]}]}]}``, spans inclusive);
* MultiReQA's ``candidates.json.gz`` for the same dataset and split: records
  ``{"candidate_id": "<DATASET>_<qid1>/<qid2>/.../_<k>", "response_start": s,
  "response_end": e}`` (JSON lines or one JSON array); ``[s, e)`` are character
  offsets into the context whose questions are exactly qid1, qid2, ... in order.

The rule (as ../shared/data/reqa-squad/README.md states it):

* corpus: one document per candidate sentence, ``_id = c<i>_s<k>`` (i = 0-based
  context position in the MRQA file, k = MultiReQA's sentence index), empty title,
  text = ``context[s:e]`` unchanged;
* queries: ``_id`` = MRQA qid, text = the question unchanged;
* qrels: a question's relevant documents are the sentences of its own context that
  wholly contain at least one of its detected answer spans; a question with no such
  sentence (its answers cross sentence boundaries) is left out, and counted.
"""

from __future__ import annotations

import json
import os
import warnings

from samtone_tf.data.common import Collection, DataError, Document, open_lines
from samtone_tf.files import write_text_atomic


def _lines(path):
    for number, text in open_lines(path):
        if text.strip():
            yield number, text


def _json(path, number, text):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{number}: malformed JSON ({error.msg})") from None


def read_mrqa(path):
    """Yields (line number, context record), skipping the header line."""
    for number, text in _lines(path):
        record = _json(path, number, text)
        if "header" in record or ("dataset" in record and "context" not in record):
            continue
        for field in ("context", "qas"):
            if field not in record:
                raise DataError(f"{path}:{number}: missing field {field!r}")
        yield number, record


def read_candidates(path):
    """Yields (location, record) from a MultiReQA candidates file."""
    lines = list(_lines(path))
    if lines and lines[0][1].lstrip().startswith("["):
        records = _json(path, lines[0][0], "".join(t for _, t in lines))
        for index, record in enumerate(records):
            yield f"{path}: record {index}", record
    else:
        for number, text in lines:
            yield f"{path}:{number}", _json(path, number, text)


def convert_multireqa(mrqa_path, candidates_path, dataset="SQuAD", split="test"):
    """Returns a :class:`Collection` built by the rule in the module docstring."""
    contexts = {}  # "/"-joined qids → (index, context, qas)
    for index, (number, record) in enumerate(read_mrqa(mrqa_path)):
        qids = "/".join(qa["qid"] for qa in record["qas"])
        contexts[qids] = (index, record["context"], record["qas"])
    sentences = {}  # context index → [(k, start, end)]
    prefix = f"{dataset}_"
    for where, record in read_candidates(candidates_path):
        candidate = record.get("candidate_id", "")
        if not candidate.startswith(prefix) or "/_" not in candidate:
            raise DataError(f"{where}: candidate_id {candidate!r} is not "
                            f"'{prefix}<qids>/_<k>'")
        qids, k = candidate[len(prefix):].rsplit("/_", 1)
        if qids not in contexts:
            raise DataError(f"{where}: candidate {candidate!r} names questions of no "
                            f"context in {mrqa_path}")
        index, context, _ = contexts[qids]
        start, end = int(record["response_start"]), int(record["response_end"])
        if not 0 <= start < end <= len(context):
            raise DataError(f"{where}: span [{start}, {end}) outside context {index} "
                            f"({len(context)} characters)")
        sentences.setdefault(index, []).append((int(k), start, end))

    corpus, queries, qrels, left_out = {}, {}, {}, 0
    for qids, (index, context, qas) in sorted(contexts.items(), key=lambda item: item[1][0]):
        spans = sorted(sentences.get(index, []))
        for k, start, end in spans:
            corpus[f"c{index}_s{k}"] = Document("", context[start:end])
        for qa in qas:
            answers = [tuple(span) for answer in qa.get("detected_answers", [])
                       for span in answer.get("char_spans", [])]
            relevant = {f"c{index}_s{k}": 1 for k, start, end in spans
                        if any(start <= a and b < end for a, b in answers)}
            if not relevant:
                left_out += 1
                continue
            queries[qa["qid"]] = qa["question"]
            qrels[qa["qid"]] = relevant
    if left_out:
        warnings.warn(f"{mrqa_path}: {left_out} question(s) left out: no answer span lies "
                      "inside one candidate sentence", stacklevel=2)
    return Collection(corpus, queries, qrels, split, os.path.dirname(mrqa_path))


def write_beir(collection, folder):
    """Writes a collection in the BEIR layout (corpus, queries, qrels/<split>.tsv), each
    file atomically (:mod:`samtone_tf.files`: a link at a target is never written
    through)."""
    corpus = "".join(json.dumps({"_id": doc_id, "title": doc.title, "text": doc.text},
                                ensure_ascii=False) + "\n"
                     for doc_id, doc in collection.corpus.items())
    queries = "".join(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n"
                      for query_id, text in collection.queries.items())
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(
        f"{query_id}\t{doc_id}\t{score}\n"
        for query_id, docs in collection.qrels.items() for doc_id, score in docs.items())
    write_text_atomic(os.path.join(folder, "corpus.jsonl"), corpus)
    write_text_atomic(os.path.join(folder, "queries.jsonl"), queries)
    write_text_atomic(os.path.join(folder, "qrels", f"{collection.split}.tsv"), qrels)
