"""Reader for collections in the BEIR layout.

A folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl``
(``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id corpus-id score``,
header line optional); each file may also be gzipped (``.gz``).

Every problem is reported with the file and line: invalid UTF-8, malformed JSON,
a missing or non-string field, an empty text, a duplicate id, a malformed qrels
line, and a qrels id absent from the corpus or the queries. With
``on_missing="skip"`` qrels lines whose ids are absent are skipped with a
warning that gives the counts; nothing is ever dropped silently.

Example:

>>> from samtone_tf.data.beir import load_beir
>>> from samtone_tf.resources import scifact_path
>>> collection = load_beir(scifact_path(), split="test")  # the copy shipped in the package
>>> len(collection.corpus), len(collection.queries), collection.num_judgements
(5183, 300, 339)
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Iterator

from samtone_tf.data.common import (BeirCollection, Collection, DataError, Document,  # noqa: F401
                                    add_text, check_duplicate_judgement, check_encodable,
                                    document_text, find_file, open_lines, present_in,
                                    require_judgements)


def read_jsonl(path: str, required: tuple, optional: tuple = (),
               skip_lines: int = 0) -> Iterator[tuple[int, dict]]:
    """Yields (line number, record) with ``required`` string fields checked (after the
    first ``skip_lines`` lines)."""
    for number, line in open_lines(path, skip_lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: malformed JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got "
                            f"{type(record).__name__}")
        for field in required + optional:
            if field not in record:
                if field in optional:
                    continue
                raise DataError(f"{path}:{number}: missing field {field!r}")
            if field == "_id" and isinstance(record[field], int):
                record[field] = str(record[field])
            if not isinstance(record[field], str):
                raise DataError(f"{path}:{number}: field {field!r} must be a string, got "
                                f"{type(record[field]).__name__}")
            check_encodable(path, number, field, record[field])
        yield number, record


def read_corpus(path: str) -> dict:
    """Documents by id. An empty document (no title, no text) is kept, since it is
    part of the collection (Cranfield has two), with a warning naming its lines."""
    corpus, empty = {}, []
    for number, record in read_jsonl(path, ("_id", "text"), ("title",)):
        doc_id, title, text = record["_id"], record.get("title", ""), record["text"]
        if doc_id in corpus:
            raise DataError(f"{path}:{number}: duplicate document id {doc_id!r}")
        if not (title.strip() or text.strip()):
            empty.append(f"line {number} (id {doc_id!r})")
        corpus[doc_id] = Document(title, text)
    if empty:
        shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
        warnings.warn(f"{path}: {len(empty)} document(s) with empty title and text kept: "
                      f"{shown}", stacklevel=3)
    return corpus


def read_queries(path: str) -> dict:
    queries = {}
    for number, record in read_jsonl(path, ("_id", "text")):
        add_text(queries, path, number, "query", record["_id"], record["text"])
    return queries


def read_qrels(path: str) -> Iterator[tuple[int, str, str, int]]:
    """Yields (line number, query id, document id, relevance)."""
    for number, line in open_lines(path):
        fields = line.rstrip("\r\n").split("\t")
        if not line.strip():
            continue
        if number == 1 and fields[0] in ("query-id", "query_id", "qid"):
            continue  # header
        if len(fields) == 4:  # TREC qrels: qid 0 docid rel
            fields = [fields[0], fields[2], fields[3]]
        if len(fields) != 3:
            raise DataError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score', "
                            f"got {len(fields)} field(s)")
        try:
            score = int(fields[2])
        except ValueError:
            raise DataError(f"{path}:{number}: score {fields[2]!r} is not an integer") from None
        yield number, fields[0], fields[1], score


def load_beir(folder: str, split: str = "test", on_missing: str = "error",
              corpus=None) -> Collection:
    """Loads a BEIR folder; ``queries`` keeps the queries judged in ``split``.

    on_missing: "error" (default) raises on a qrels id absent from the corpus or
    the queries, naming file, line and id; "skip" skips such qrels lines and warns
    with the counts. ``corpus``: the corpus already read (a stored corpus,
    :mod:`samtone_tf.data.store`) instead of reading ``corpus.jsonl``.
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"BEIR folder {folder!r} does not exist")
    if corpus is None:
        corpus_path = find_file(folder, "corpus.jsonl")
        corpus = read_corpus(corpus_path)
        if not corpus:
            raise DataError(f"{corpus_path}: the corpus holds no document")
    all_queries = read_queries(find_file(folder, "queries.jsonl"))
    qrels_path = find_file(os.path.join(folder, "qrels"), f"{split}.tsv")
    qrels: dict = {}
    skipped = {"query": 0, "document": 0}
    seen: dict = {}
    lines = list(read_qrels(qrels_path))
    known = present_in(corpus, [doc_id for _, _, doc_id, _ in lines])
    for (number, query_id, doc_id, score), doc_known in zip(lines, known):
        check_duplicate_judgement(seen, qrels_path, number, query_id, doc_id)
        for kind, is_known, the_id in (("query", query_id in all_queries, query_id),
                                       ("document", doc_known, doc_id)):
            if not is_known:
                if on_missing == "error":
                    raise DataError(f"{qrels_path}:{number}: {kind} id {the_id!r} is not in "
                                    f"the {'queries' if kind == 'query' else 'corpus'}")
                skipped[kind] += 1
                break
        else:
            qrels.setdefault(query_id, {})[doc_id] = score
    if any(skipped.values()):
        warnings.warn(f"{qrels_path}: skipped {skipped['query']} qrels line(s) with an unknown "
                      f"query id and {skipped['document']} with an unknown document id "
                      f"(on_missing='skip')", stacklevel=2)
    require_judgements(qrels, qrels_path, split)
    queries = {qid: all_queries[qid] for qid in qrels}
    return Collection(corpus, queries, qrels, split, folder)
