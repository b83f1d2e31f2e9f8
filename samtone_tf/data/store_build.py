"""Building a collection store (:mod:`samtone_tf.data.store`) from BEIR or MS MARCO files,
streaming: the corpus goes through in batches of ``BATCH_ROWS`` records into Arrow IPC
part files of at most ``PART_ROWS`` rows, so memory stays bounded whatever the corpus
size. Each part is written atomically and recorded in ``building.json``; a build killed
at any point (SIGKILL included) resumes after its last finished part. ``manifest.json``
is written last: a folder without it is an unfinished build.

Every problem names file and line, as the in-memory readers do (the same checks: JSON,
UTF-8, fields, empty texts, duplicate ids; the duplicate check runs over the whole
stored id column at the end, naming both lines).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings

from samtone_tf.data.common import DataError
from samtone_tf.data.store import (FORMAT, corpus_source, default_store_path, is_store,
                                   open_corpus, read_manifest, stored_corpus)
from samtone_tf.files import FolderLock, remove_leftovers, write_json_atomic

VERSION = 1
PART_ROWS = 1_000_000
BATCH_ROWS = 65_536


SAMPLES = 64
SAMPLE_BYTES = 1 << 16


def file_fingerprint(path):
    """{"path", "size", "mtime_ns", "sample_sha256"} of a source file: a store is reused
    only while its source has the same size and modification time and the same bytes in
    64 blocks of 64 KiB spread evenly over it, first and last included (checked at every
    use: 4 MiB read, not the whole file, so that opening an 8.8M-passage collection
    whose 3.4 GB file is not in the page cache does not cost a full read, measured 34 s)."""
    stat = os.stat(path)
    digest = hashlib.sha256(f"{stat.st_size}".encode())
    with open(path, "rb") as handle:
        last = max(stat.st_size - SAMPLE_BYTES, 0)
        for number in range(SAMPLES):
            handle.seek(last * number // (SAMPLES - 1))
            digest.update(handle.read(SAMPLE_BYTES))
    return {"path": os.path.abspath(path), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "sample_sha256": digest.hexdigest()}


def corpus_records(path, data_format, skip_lines=0):
    """Yields (line number, id, title, text) of a corpus file, after ``skip_lines``."""
    from samtone_tf.data.beir import read_jsonl
    from samtone_tf.data.common import add_text, rows

    if data_format == "beir":
        for number, record in read_jsonl(path, ("_id", "text"), ("title",),
                                         skip_lines=skip_lines):
            yield number, record["_id"], record.get("title", ""), record["text"]
        return
    for number, (pid, text) in rows(path, 2, skip_lines=skip_lines):
        add_text({}, path, number, "passage", pid, text)  # the empty-text check
        yield number, pid, "", text


def _schema():
    import pyarrow as pa

    return pa.schema([("line", pa.int32()), ("id", pa.string()), ("title", pa.string()),
                      ("text", pa.string())])


class _PartWriter:
    """One part file, written batch by batch under a temporary name and renamed into
    place when closed: memory holds one batch of records, not one part."""

    def __init__(self, path):
        import pyarrow as pa

        from samtone_tf.files import temporary_name

        self.path, self.rows = path, 0
        self.temporary = temporary_name(path, ".arrow")
        self.writer = pa.ipc.new_file(self.temporary, _schema())

    def write(self, columns):
        import pyarrow as pa

        self.writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=_schema()))
        self.rows += len(columns["id"])

    def close(self):
        self.writer.close()
        os.replace(self.temporary, self.path)

    def abandon(self):
        self.writer.close()
        os.remove(self.temporary)


def build_corpus(folder, store, data_format, log=print):
    """Writes ``store/corpus/part-*.arrow`` from the corpus file of ``folder``, resuming
    a killed build of the same source; returns the source's fingerprint and row count."""
    source = corpus_source(folder, data_format)
    fingerprint = file_fingerprint(source)
    parts_dir = os.path.join(store, "corpus")
    os.makedirs(parts_dir, exist_ok=True)
    remove_leftovers(parts_dir)
    progress_path = os.path.join(store, "building.json")
    progress = {"source": fingerprint, "parts": 0, "lines": 0, "rows": 0, "empty": []}
    if os.path.exists(progress_path):
        with open(progress_path, encoding="utf-8") as handle:
            earlier = json.load(handle)
        if earlier.get("source") == fingerprint:
            progress = earlier
            if progress["parts"]:
                log(f"resuming the store of {source} after {progress['rows']} documents")
    for name in os.listdir(parts_dir):  # parts past the recorded progress: unfinished
        if name.startswith("part-") and int(name[5:10]) >= progress["parts"]:
            os.remove(os.path.join(parts_dir, name))
    fresh = lambda: {key: [] for key in ("line", "id", "title", "text")}  # noqa: E731
    columns, part, last = fresh(), None, progress["lines"]
    try:
        for number, doc_id, title, text in corpus_records(source, data_format,
                                                          progress["lines"]):
            last = number
            for key, value in (("line", number), ("id", doc_id), ("title", title),
                               ("text", text)):
                columns[key].append(value)
            if not (title.strip() or text.strip()) and len(progress["empty"]) < 6:
                progress["empty"].append(f"line {number} (id {doc_id!r})")
            room = PART_ROWS - (part.rows if part is not None else 0)
            if len(columns["id"]) == min(BATCH_ROWS, room):  # a batch, or the part's end
                part = part or _PartWriter(_part_path(parts_dir, progress))
                part.write(columns)
                columns = fresh()
                if part.rows == PART_ROWS:
                    _finish_part(part, progress, number, progress_path)
                    part = None
        if columns["id"]:
            part = part or _PartWriter(_part_path(parts_dir, progress))
            part.write(columns)
        if part is not None:
            _finish_part(part, progress, last, progress_path)
            part = None
    finally:
        if part is not None:
            part.abandon()
    if not progress["rows"]:
        raise DataError(f"{source}: the corpus holds no document")
    if progress["empty"]:
        shown = ", ".join(progress["empty"][:5]) + (" ..." if len(progress["empty"]) > 5 else "")
        warnings.warn(f"{source}: document(s) with empty title and text kept: {shown}",
                      stacklevel=3)
    return fingerprint, progress["rows"]


def _part_path(parts_dir, progress):
    return os.path.join(parts_dir, f"part-{progress['parts']:05d}.arrow")


def _finish_part(part, progress, last_line, progress_path):
    part.close()
    progress.update(parts=progress["parts"] + 1, lines=last_line,
                    rows=progress["rows"] + part.rows)
    write_json_atomic(progress_path, progress)


def check_unique_ids(table, source, kind="document"):
    """Raises DataError naming both lines of the first id that appears twice."""
    import numpy as np
    import pyarrow.compute as pc

    ids = table.column("id")
    first = pc.index_in(ids, value_set=ids).to_numpy(zero_copy_only=False)
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # the hash table over every id
    repeated = np.flatnonzero(first != np.arange(len(first)))
    if len(repeated):
        row = int(repeated[0])
        lines = table.column("line")
        raise DataError(f"{source}:{lines[row].as_py()}: duplicate {kind} id "
                        f"{ids[row].as_py()!r} (first at line {lines[int(first[row])].as_py()})")


def build_store(folder, store, data_format="beir", log=print):
    """Builds (or resumes, or reuses) the store of ``folder`` at ``store``; returns the
    manifest. A store whose manifest matches the source's fingerprint is reused as is;
    one made from other bytes is rebuilt (only when the folder is a store this package
    wrote: a manifest of ours, or nothing but our files)."""
    os.makedirs(store, exist_ok=True)
    with FolderLock(store, command="samtone prepare"):
        manifest = read_manifest(store)
        source = corpus_source(folder, data_format)
        if manifest is not None:
            if manifest["corpus"]["source"] == file_fingerprint(source) and \
                    manifest["data_format"] == data_format:
                return manifest
            log(f"{source} changed since its store {store} was built; rebuilding it")
            os.remove(os.path.join(store, "manifest.json"))
        fingerprint, rows = build_corpus(folder, store, data_format, log)
        table = open_corpus(store)
        check_unique_ids(table, source)
        manifest = {"format": FORMAT, "version": VERSION, "data_format": data_format,
                    "collection": os.path.abspath(folder),
                    "corpus": {"source": fingerprint, "documents": rows}}
        write_json_atomic(os.path.join(store, "manifest.json"), manifest)
        os.remove(os.path.join(store, "building.json"))
        return manifest


def load_stored(path, split="test", data_format="beir", store=None, on_missing="error",
                log=print):
    """A Collection whose corpus is read from a store: ``path`` is a store (its
    recorded collection folder supplies queries and judgements) or a BEIR / MS MARCO
    folder, whose store at ``store`` (default :func:`default_store_path`) is built,
    resumed or reused first."""
    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.msmarco import load_msmarco

    if is_store(path):
        store, manifest = path, read_manifest(path)
        folder, data_format = manifest["collection"], manifest["data_format"]
        source = corpus_source(folder, data_format)  # queries and judgements come from there
        if file_fingerprint(source) != manifest["corpus"]["source"]:
            raise DataError(f"{source} changed since the store {store} was built from it; "
                            f"rebuild it: samtone prepare {folder} --output {store} "
                            "--overwrite")
    else:
        folder, store = path, store or default_store_path(path)
        build_store(folder, store, data_format, log=log)
    corpus, _ = stored_corpus(store)
    loader = load_beir if data_format == "beir" else load_msmarco
    return loader(folder, split, on_missing=on_missing, corpus=corpus)
