"""What every collection format shares: the collection type, documents, errors,
and one gzip-aware line reader.

Example:

>>> from samtone_tf.data.common import Collection, Document
>>> c = Collection({"d1": Document("Title", "text")}, {"q1": "a question"}, {"q1": {"d1": 1}},
...                "test", "inline")
>>> c.corpus["d1"].full_text, c.num_judgements
('Title text', 1)
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from typing import Iterator

from samtone_tf.errors import DataError  # noqa: E402,F401  (re-exported)


@dataclasses.dataclass(frozen=True)
class Document:
    """A corpus entry; texts are kept exactly as read (no stripping)."""

    title: str
    text: str

    @property
    def full_text(self) -> str:
        """``title + " " + text``; just ``text`` when the title is empty."""
        return document_text(self.title, self.text)


def document_text(title: str, text: str) -> str:
    """The text a model sees for a document: title, one space, text (no space
    when the title is empty)."""
    return f"{title} {text}" if title else text


@dataclasses.dataclass
class Collection:
    """Any retrieval collection (BEIR, MS MARCO, MultiReQA, TFDS): corpus: id →
    Document; queries: id → text (only the split's judged queries); qrels: query id →
    {document id: relevance}; ``split`` and ``path`` say where it came from."""

    corpus: dict
    queries: dict
    qrels: dict
    split: str
    path: str

    @property
    def num_judgements(self) -> int:
        return sum(len(docs) for docs in self.qrels.values())


BeirCollection = Collection  # the earlier name


class CorpusRows:
    """Row-wise access to a corpus, in its order, whether it is an in-memory dict or a
    stored corpus (:class:`samtone_tf.data.store.StoredCorpus`): what bulk work (encoding,
    search, mining) uses, so it never lists an 8.8M-passage corpus as Python objects."""

    def __init__(self, corpus):
        self.corpus = corpus
        self._stored = hasattr(corpus, "texts")
        self._ids = None if self._stored else list(corpus)
        self.fingerprint = getattr(corpus, "fingerprint", None)

    def __len__(self):
        return len(self.corpus)

    def texts(self, start, stop):
        if self._stored:
            return self.corpus.texts(start, stop)
        return [self.corpus[doc_id].full_text for doc_id in self._ids[start:stop]]

    def texts_at(self, rows):
        if self._stored:
            return self.corpus.texts_at(rows)
        return [self.corpus[self._ids[int(row)]].full_text for row in rows]

    def ids_at(self, rows):
        if self._stored:
            return self.corpus.ids_at(rows)
        return [self._ids[int(row)] for row in rows]

    def rows_of(self, ids):
        """Rows of ``ids`` (int64 array), -1 for an id not in the corpus."""
        import numpy as np

        if self._stored:
            return self.corpus.rows_of(ids)
        position = {doc_id: row for row, doc_id in enumerate(self._ids)}
        return np.array([position.get(doc_id, -1) for doc_id in ids], np.int64)


def find_file(folder: str, name: str) -> str:
    for candidate in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"{os.path.join(folder, name)}(.gz) not found")


def open_lines(path: str, skip_lines: int = 0) -> Iterator[tuple[int, str]]:
    """Yields (line number, decoded line) of a text file, gzipped when it ends in
    ``.gz``; a UTF-8 byte-order mark is dropped, invalid UTF-8 names file and line.
    The first ``skip_lines`` lines are read past without decoding (a resumed read)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number <= skip_lines:
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: invalid UTF-8 ({error.reason} at byte "
                                f"{error.start})") from None
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield number, line


def check_encodable(path: str, number: int, field: str, value: str):
    """A JSON escape can smuggle in a lone surrogate (\\ud800), which no UTF-8
    tokenizer can take: name file, line and field instead of failing later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DataError(f"{path}:{number}: field {field!r} holds an undecodable character "
                        f"(U+{ord(value[error.start]):04X}, {error.reason})") from None


def add_text(table: dict, path: str, number: int, kind: str, the_id: str, text: str):
    """table[the_id] = text, refusing an empty text or a repeated id (naming file:line)."""
    if not text.strip():
        raise DataError(f"{path}:{number}: {kind} {the_id!r} has an empty text")
    if the_id in table:
        raise DataError(f"{path}:{number}: duplicate {kind} id {the_id!r}")
    table[the_id] = text


def check_duplicate_judgement(seen: dict, path: str, number: int, query_id: str, doc_id: str):
    """Refuses a (query, document) pair judged twice, naming both lines."""
    first = seen.setdefault((query_id, doc_id), number)
    if first != number:
        raise DataError(f"{path}:{number}: query {query_id!r} and document {doc_id!r} are "
                        f"judged twice (first at line {first}); which judgement holds?")


def present_in(corpus, ids):
    """[bool] per id: whether it is a document of ``corpus`` (a dict, or a stored corpus,
    asked once for all ids)."""
    if hasattr(corpus, "rows_of"):
        return [bool(row >= 0) for row in corpus.rows_of(ids)]
    return [the_id in corpus for the_id in ids]


def require_judgements(qrels: dict, path: str, split: str):
    if not qrels:
        raise DataError(f"{path}: split {split!r} has no judged query")


def rows(path, columns, separator="\t", skip_lines=0):
    """Yields (line number, fields) of a tab- (or, with separator=None, whitespace-)
    separated file, refusing a line with another field count; blank lines skipped."""
    for number, line in open_lines(path, skip_lines):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split(separator) if separator else line.split()
        if len(fields) != columns:
            raise DataError(f"{path}:{number}: expected {columns} "
                            f"{'tab-separated' if separator else 'whitespace-separated'} fields, "
                            f"got {len(fields)}")
        yield number, fields
