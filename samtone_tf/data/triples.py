"""Training from MS MARCO's id triples (``qidpidtriples.train.full.tsv``: ``qid<TAB>positive
pid<TAB>negative pid``, 40M rows), streamed: the file is parsed in 16 MB blocks by
``pyarrow.csv`` (one thread: with threads, blocks read ahead held a gigabyte) and its ids
mapped to int32 (query index, positive row, negative row),
written to an int32 file beside the collection store (reused while the triples file
keeps its size, time and sampled content) and memory-mapped; the examples are
:class:`~samtone_tf.data.streaming.ExampleColumns` whose batch order is computed with
NumPy (:func:`~samtone_tf.data.streaming.vectorized_batch_order`)."""

from __future__ import annotations

import json
import os

import numpy as np

from samtone_tf.data.common import CorpusRows, DataError
from samtone_tf.data.streaming import ExampleColumns
from samtone_tf.files import atomic_path, write_json_atomic

BLOCK_BYTES = 16 << 20


def _blocks(path):
    """Yields pyarrow record batches of (q, p, n) strings from a tab-separated file."""
    import pyarrow as pa
    import pyarrow.csv as csv

    names = ["q", "p", "n"]
    reader = csv.open_csv(
        pa.input_stream(path, compression="detect"),
        read_options=csv.ReadOptions(column_names=names, block_size=BLOCK_BYTES,
                                       use_threads=False),
        parse_options=csv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=csv.ConvertOptions(column_types={n: pa.string() for n in names}))
    try:
        yield from reader
    except pa.ArrowInvalid as error:
        raise DataError(f"{path}: malformed triples ({str(error).splitlines()[0][:200]}); "
                        "expected 'qid<TAB>positive pid<TAB>negative pid' lines") from None


class _NumericIds:
    """Rows of numeric ids by binary search over the corpus ids as int64 (MS MARCO's pids
    are decimal integers): 0.2 GB for 8.8M passages, where a hash table over string ids
    per block of triples held more than a gigabyte. None when an id of the corpus is not
    a canonical decimal integer (then the string lookup is used)."""

    def __init__(self, ids):
        self.sorted_ids, self.rows = ids, None

    @classmethod
    def of(cls, rows):
        import pyarrow as pa

        store = getattr(rows.corpus, "_ids", None)
        ids = store if store is not None else pa.array(list(rows.corpus), pa.string())
        numbers = _canonical_integers(ids)
        if numbers is None:
            return None
        order = np.argsort(numbers, kind="stable")
        found = cls(numbers[order])
        found.rows = order.astype(np.int32)
        del numbers, order
        pa.default_memory_pool().release_unused()  # the casts' buffers
        return found

    def rows_of(self, ids):
        """Rows of a pyarrow string array of ids; -1 where absent; None when an id is not
        a canonical decimal integer."""
        numbers = _canonical_integers(ids)
        if numbers is None:
            return None
        at = np.minimum(np.searchsorted(self.sorted_ids, numbers), len(self.sorted_ids) - 1)
        return np.where(self.sorted_ids[at] == numbers, self.rows[at], -1)


def _canonical_integers(ids):
    """int64 NumPy array of decimal-integer string ids, or None when one is not written
    as ``str(int(id))`` (a leading zero, a sign, a space, not a number)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        numbers = pc.cast(ids, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not pc.all(pc.equal(pc.cast(numbers, pa.string()), ids)).as_py():
        return None
    if isinstance(numbers, pa.ChunkedArray):
        numbers = numbers.combine_chunks()
    return numbers.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def map_triples(path, collection, output):
    """Writes ``output`` (int32 [T, 3]: query index into ``sorted(collection.queries)``,
    positive row, negative row) from the triples file ``path``; an id absent from the
    split's queries or the corpus names its line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    query_ids = pa.array(sorted(collection.queries), pa.string())
    rows = CorpusRows(collection.corpus)
    numeric = _NumericIds.of(rows)
    total = 0
    with atomic_path(output, suffix=".int32") as temporary, open(temporary, "wb") as out:
        for batch in _blocks(path):
            mapped = np.empty((batch.num_rows, 3), np.int32)
            mapped[:, 0] = pc.index_in(batch.column(0), value_set=query_ids).fill_null(
                -1).to_numpy(zero_copy_only=False)
            for column in (1, 2):
                ids = batch.column(column)  # a stored corpus takes the Arrow array as is
                found = numeric.rows_of(ids) if numeric is not None else None
                mapped[:, column] = found if found is not None else rows.rows_of(
                    ids if rows.fingerprint else ids.to_pylist())
            bad = np.flatnonzero((mapped < 0).any(axis=1))
            if len(bad):
                row = int(bad[0])
                column = int(np.flatnonzero(mapped[row] < 0)[0])
                kind = ("query", "positive passage", "negative passage")[column]
                raise DataError(f"{path}:{total + row + 1}: {kind} id "
                                f"{batch.column(column)[row].as_py()!r} is not in "
                                f"{'the split' if column == 0 else 'the corpus'}")
            mapped.tofile(out)
            total += batch.num_rows
            del batch, mapped
            pa.default_memory_pool().release_unused()
    if not total:
        raise DataError(f"{path}: no triples")
    return total


def triple_columns(path, collection, cache_dir, with_negatives=True):
    """:class:`ExampleColumns` of the triples file ``path`` over ``collection`` (its
    split's queries, its corpus), mapped once into ``cache_dir`` and memory-mapped."""
    from samtone_tf.data.store_build import file_fingerprint

    import hashlib

    source = file_fingerprint(path)
    query_ids = sorted(collection.queries)
    source["queries_sha256"] = hashlib.sha256("\0".join(query_ids).encode()).hexdigest()
    os.makedirs(cache_dir, exist_ok=True)
    name = f"triples-{source['sample_sha256'][:12]}-{source['queries_sha256'][:12]}"
    data, record = (os.path.join(cache_dir, f"{name}.{ext}") for ext in ("int32", "json"))
    known = None
    if os.path.exists(record):
        with open(record, encoding="utf-8") as handle:
            known = json.load(handle)
    if known is None or known.get("source") != source or not os.path.exists(data) or \
            os.path.getsize(data) != known.get("rows", -1) * 12:
        rows = map_triples(path, collection, data)
        write_json_atomic(record, {"source": source, "rows": rows,
                                   "queries": len(collection.queries)})
        known = {"rows": rows}
    table = np.memmap(data, np.int32, "r", shape=(known["rows"], 3))
    return ExampleColumns(
        query_ids, np.array([collection.queries[q] for q in query_ids], dtype=object),
        table[:, 0], table[:, 1], table[:, 2:3] if with_negatives else table[:, 3:3],
        CorpusRows(collection.corpus), order="vectorized")
