"""The corpus encoder that evaluation and ``samtone index`` share: shards written straight
into one memory-mapped ``[N, D]`` float32 file on disk, resumable, split across processes.

``work_dir/<key>/`` holds ``vectors.npy`` (``numpy.lib.format.open_memmap``) and one
``rows-START-STOP.json`` per finished shard (its rows and the sha256 of their bytes,
written after the rows are flushed). ``<key>`` is a sha256 over the model's fingerprint
(:func:`~samtone_tf.retrieval.corpus.model_fingerprint`), the corpus (a stored corpus'
source hash, or every text) and the row count, so a changed model or corpus never reads
another's vectors; a run with another shard size re-encodes the rows its shards cover. The vectors live in the page cache, not in the
process' anonymous memory, so encoding memory does not grow with the corpus; a killed
run re-encodes only the shards without a verified record; processes with ``role`` =
(slot, slots) encode shards slot, slot + slots, ... into the same file.
"""

from __future__ import annotations

import collections.abc
import hashlib
import json
import os
import time

import numpy as np

from samtone_tf.data.common import CorpusRows
from samtone_tf.files import temporary_name, write_json_atomic
from samtone_tf.retrieval.corpus import encode_corpus, model_fingerprint


class _TextRows:
    """CorpusRows' interface over a plain list of texts."""

    def __init__(self, texts, ids=None):
        self._texts, self._ids, self.fingerprint = list(texts), ids, None

    def __len__(self):
        return len(self._texts)

    def texts(self, start, stop):
        return self._texts[start:stop]

    def ids_at(self, rows):
        return [self._ids[int(r)] if self._ids is not None else f"row {int(r)}" for r in rows]


def as_rows(texts, ids=None):
    """CorpusRows for a corpus mapping, a stored corpus or a list of texts."""
    if hasattr(texts, "texts") and hasattr(texts, "ids_at") and not isinstance(
            texts, collections.abc.Mapping):  # CorpusRows or anything with its interface
        return texts
    if isinstance(texts, collections.abc.Mapping):
        return CorpusRows(texts)
    return _TextRows(texts, ids)


def corpus_digest(rows, chunk=65_536):
    """sha256 identifying the texts of ``rows``: a stored corpus' source hash, else every
    text (streamed in chunks)."""
    if rows.fingerprint is not None:
        return f"store:{rows.fingerprint}"
    digest = hashlib.sha256(f"{len(rows)}".encode())
    for start in range(0, len(rows), chunk):
        for text in rows.texts(start, min(start + chunk, len(rows))):
            digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def shards_folder(work_dir, model, rows):
    key = hashlib.sha256(f"{model_fingerprint(model)}|{corpus_digest(rows)}|{len(rows)}"
                         .encode()).hexdigest()
    return os.path.join(work_dir, key)


def _checksum(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _marker(folder, start, stop):
    return os.path.join(folder, f"rows-{start}-{stop}.json")


def _finished(folder, vectors, start, stop):
    """Whether rows start:stop have a record that they still match in ``vectors``."""
    path = _marker(folder, start, stop)
    if vectors is None or not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return False
    rows = vectors[start:stop]
    return (record.get("rows") == [start, stop] and record.get("sha256") == _checksum(rows)
            and bool(np.isfinite(rows).all()))


def _create(path, rows, dim):
    """``path`` as a zero-filled [rows, dim] float32 .npy, created once even when several
    processes race to it (made under a temporary name, then hard-linked into place)."""
    if os.path.exists(path):
        return
    temporary = temporary_name(path, ".npy")
    array = np.lib.format.open_memmap(temporary, "w+", np.float32, (rows, dim))
    del array
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.remove(temporary)


def _open(path, rows, dim, mode="r+"):
    if not os.path.exists(path):
        return None
    array = np.load(path, mmap_mode=mode)
    if array.shape != (rows, dim) or array.dtype != np.float32:
        raise ValueError(f"{path}: shape {array.shape} {array.dtype}, expected ({rows}, {dim}) "
                         "float32; remove the folder to re-encode")
    return array


def encode_in_shards(model, texts, work_dir, shard_size=50_000, batch_size=64, progress=True,
                     ids=None, role=(0, 1), wait_timeout=1800.0, poll_s=2.0,
                     concatenate=True):
    """Document embeddings [N, D] of ``texts`` (a list, a corpus mapping or a stored corpus)
    in ``shard_size`` shards written into ``work_dir/<key>/vectors.npy`` (module
    docstring). Returns, for slot 0, the memory-mapped array (read-only), or with
    ``concatenate=False`` the list of its shard views; other slots return None once their
    shards are written. Slot 0 waits for the other slots' shards and gives up with
    TimeoutError, naming a missing shard and its slot, after ``wait_timeout`` seconds
    without a new one; rerunning the missing worker completes it (finished shards are
    kept). Shards that are whole multiples of ``batch_size`` give the same batches, hence
    the same vectors, as one pass over the corpus."""
    rows = as_rows(texts, ids)
    slot, slots = role
    count = len(rows)
    folder = shards_folder(work_dir, model, rows)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "vectors.npy")
    starts = list(range(0, count, shard_size))
    dim = getattr(model, "embedding_dim", None)
    if dim is None:
        dim = encode_corpus(model, rows.texts(0, 1), 1, progress=False).shape[1]
    dim = int(dim)
    if slot == 0 or os.path.exists(path):
        _create(path, count, dim)
    vectors = _open(path, count, dim)
    written = set()  # shards this call wrote: not read back to verify them again
    for number, start in enumerate(starts):
        stop = min(start + shard_size, count)
        if number % slots != slot or _finished(folder, vectors, start, stop):
            continue
        if progress:
            print(f"shard {number + 1} of {len(starts)} (documents {start}..{stop - 1})",
                  flush=True)
        part = encode_corpus(model, rows.texts(start, stop), batch_size, progress=progress,
                             side="document", ids=rows.ids_at(range(start, stop)))
        if vectors is None:
            _create(path, count, dim)
            vectors = _open(path, count, dim)
        vectors[start:stop] = part
        vectors.flush()
        write_json_atomic(_marker(folder, start, stop),
                          {"rows": [start, stop], "sha256": _checksum(part)})
        written.add(number)
        del part
    if slot != 0:
        return None
    waiting = {n for n in range(len(starts)) if n not in written and
               not _finished(folder, vectors, starts[n], min(starts[n] + shard_size, count))}
    last_new = time.monotonic()
    while waiting:
        time.sleep(poll_s)
        for number in sorted(waiting):
            if _finished(folder, vectors, starts[number], min(starts[number] + shard_size,
                                                              count)):
                waiting.discard(number)
                last_new = time.monotonic()
        if waiting and time.monotonic() - last_new > wait_timeout:
            first = min(waiting)
            raise TimeoutError(f"{work_dir}: shard {first + 1} of {len(starts)} (slot "
                               f"{first % slots} of {slots}) did not appear within "
                               f"{wait_timeout:g} s")
    del vectors
    result = _open(path, count, dim, mode="r")  # every shard checked finite as it was read
    if concatenate:
        return result
    return [result[start:start + shard_size] for start in starts]
