"""A retrieval SavedModel: text in, the corpus' own top-k document ids out.

``build_index(model, collection, output)`` (``samtone index``) encodes the corpus in
shards (each verified and kept in ``<output>.shards/`` until the index is written, so
a killed run resumes where it stopped), and writes one SavedModel that holds the query
encoder, the document vectors and their ids:

* ``search(texts: tf.string [None], k: int32 scalar) -> {"ids": tf.string [None, k],
  "scores": float32 [None, k]}``, best first, 1 <= k <= ``max_k`` (in the assets; a
  larger k is an InvalidArgumentError). ``k`` is chosen per call: one artifact serves
  k = 1, 10, 100;
* ``encode_query`` / ``encode_document`` / ``serving_default`` as in every export
  (:mod:`samtone_tf.export`); it loads with tensorflow + tensorflow_text only.

Search runs inside the graph over chunks of documents, keeping a running top-k
(ties: the earlier document, as :func:`samtone_tf.retrieval.search.exact_search`):

* ``none``: float32 vectors, exact inner product = what ``samtone eval`` ranks;
* ``int8``: per-dimension symmetric scales (s_j = max_i |x_ij| / 127, codes
  round(x / s)), scores q · (codes ⊙ s): 4× smaller vectors;
* ``binary``: sign bits packed 8 per byte (32× smaller); candidates are the
  ``rescore`` · k documents nearest in Hamming distance to the query's sign bits,
  re-scored with the float query against the ±1 vectors (``rescore_vectors="sign"``)
  or against int8 codes stored beside the bits (``"int8"``: 3.6× smaller than
  float32 instead of 32×, and nearly float32's ranking; measured in docs/RESULTS.md).

``dims``: the first ``dims`` coordinates of both sides, re-normalised (Matryoshka
truncation).

The stored vectors are split into blocks of at most ``block_rows`` rows (one variable per
block and stored array; sizes follow ``tf.nn.embedding_lookup``'s "div" partitioning,
which the binary index's re-scoring gathers through). The builder turns the cached shards
into blocks one at a time and lets each shard go once its rows are in a variable, so the
build holds the corpus' vectors about once, not once per copy (a single [N, D] variable
needed about three copies during the write); search scores block after block, chunk by
chunk, with one running top-k.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from samtone_tf.devices import encoding_role
from samtone_tf.errors import DataError
from samtone_tf.export.saved_model import (CONFIG_ASSET, SavedModelEncoder, _EncoderModule,
                                           export_config, write_assets)
from samtone_tf.files import FolderLock, check_replaceable, refuse_link, write_folder_atomic
from samtone_tf.internals import AutoTrackable
from samtone_tf.data.common import CorpusRows
from samtone_tf.retrieval.encoder import encode_in_shards
from samtone_tf.retrieval.quantization import (QUANTIZATIONS, RESCORE_VECTORS, _unpack, int8_scales,
                                               quantize, truncate)
from samtone_tf.tokenizers.text_ops import tensorflow_text

INDEX_ASSET = "samtone_index.json"
# Documents scored per loop iteration (a [B, CHUNK] score block, the chunk cast to float32):
# searching 2M int8 documents, 65,536 held 0.58 GB above the loaded index, 16,384 0.26 GB,
# at the same speed.
CHUNK = 16384
BLOCK_ROWS = 262_144  # rows per index variable: 384 MiB of float32 at 384 dimensions


def _merge(best_scores, best_indices, scores, offset, k):
    """Running top-k: the earlier results first, so ties keep the earlier document."""
    values, indices = tf.math.top_k(scores, k=tf.minimum(k, tf.shape(scores)[1]))
    scores = tf.concat([best_scores, values], axis=1)
    indices = tf.concat([best_indices, tf.cast(indices, tf.int64) + offset], axis=1)
    values, position = tf.math.top_k(scores, k=k)
    return values, tf.gather(indices, position, batch_dims=1)


def chunked_top_k(queries, rows, k, score_chunk, chunk=CHUNK, best=None, offset=0):
    """Top-k over ``rows`` documents scored ``score_chunk(queries, start, end)`` chunk
    by chunk in a ``tf.while_loop`` (one chunk's scores in memory). ``best``: a running
    (scores, indices) top-k of earlier documents to continue from; ``offset``: added to
    this call's row numbers (the block's first row in the whole index)."""
    if best is None:
        batch = tf.shape(queries)[0]
        best = (tf.fill([batch, k], -np.inf), tf.fill([batch, k], tf.constant(-1, tf.int64)))

    def body(start, best_scores, best_indices):
        end = tf.minimum(start + chunk, rows)
        scores = score_chunk(queries, start, end)
        merged = _merge(best_scores, best_indices, scores,
                        tf.cast(start, tf.int64) + offset, k)
        return (end, *merged)

    _, scores, indices = tf.while_loop(
        lambda start, *_: start < rows, body, [tf.constant(0), *best],
        shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, None]),
                          tf.TensorShape([None, None])])
    return scores, indices


def block_sizes(rows, block_rows=BLOCK_ROWS):
    """Rows per index block: ceil(rows / block_rows) blocks, sized as
    ``tf.nn.embedding_lookup``'s "div" strategy partitions ``rows`` ids (the first
    rows % blocks blocks one row longer)."""
    return _div_sizes(rows, max(1, -(-rows // max(1, int(block_rows)))))


def _div_sizes(rows, blocks):
    return [rows // blocks + (1 if b < rows % blocks else 0) for b in range(blocks)]


def index_blocks(parts, sizes, quantization, rescore_vectors="sign", scales=None, dims=None,
                 chunk=CHUNK):
    """Yields the stored arrays (:func:`quantize`) of each block of ``sizes`` rows, cut
    from ``parts`` (a list of [rows, D] arrays in corpus order, e.g. the memory-mapped
    shards), which it empties as it goes, and cut to their first ``dims`` coordinates
    re-normalised (:func:`truncate`). Rows are truncated and quantized ``chunk`` at a
    time (row-wise operations, the corpus' int8 ``scales``), so besides the stored block
    only one chunk of float32 rows is in memory (a whole int8 block quantized at once
    held about 1 GB of float32 temporaries at 262,144 × 384)."""
    for size in sizes:
        pieces, need = [], size
        while need:
            head = parts[0]
            pieces.append(head[:need])
            if len(head) <= need:
                parts.pop(0)
            else:
                parts[0] = head[need:]
            need -= len(pieces[-1])
        stored = [_quantized(piece[start:start + chunk], quantization, rescore_vectors,
                             scales, dims)
                  for piece in pieces for start in range(0, len(piece), chunk)]
        del pieces
        block = {name: stored[0][name] if len(stored) == 1 else
                 np.concatenate([part[name] for part in stored]) for name in stored[0]}
        del stored
        yield block
        del block  # not held while the next block is cut (its variable has the rows)


def _quantized(rows, quantization, rescore_vectors, scales, dims):
    stored = quantize(truncate(rows, dims), quantization, rescore_vectors, scales)
    stored.pop("scales", None)
    return stored


def ids_tensor(rows, chunk=1 << 20):
    """The corpus ids as one tf.string tensor [N], converted ``chunk`` ids at a time
    (``rows``: :class:`~samtone_tf.data.common.CorpusRows`), never as one Python list
    of every id (8.8M ids: 0.6 GB of str objects)."""
    parts = [tf.constant(rows.ids_at(range(start, min(start + chunk, len(rows)))), tf.string)
             for start in range(0, len(rows), chunk)]
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)


class _Index(AutoTrackable):
    """The saved object: the encoder module, the stored vectors (in blocks), ids and
    ``search``. ``blocks``: an iterable of {name: array} per block (:func:`index_blocks`;
    one variable each, made as the iterable yields them); ``scales``: the int8 scales."""

    def __init__(self, encoder, blocks, ids, dim, dims, max_k, rescore, scales=None):
        super().__init__()
        self.encoder = encoder  # tracked: its variables and tokenizer assets are saved
        self.index_blocks, sizes = [], []
        for number, block in enumerate(blocks):
            self.index_blocks.append({name: tf.Variable(value, trainable=False,
                                                        name=f"{name}_{number}")
                                      for name, value in block.items()})
            sizes.append(int(next(iter(block.values())).shape[0]))
            del block
        ids = ids if isinstance(ids, tf.Tensor) else tf.constant(
            np.asarray(ids, dtype=object), tf.string)
        rows = int(ids.shape[0])
        if sizes != _div_sizes(sum(sizes), len(sizes)) or sum(sizes) != rows:
            raise ValueError(f"index blocks of {sizes} rows do not partition {rows} "
                             "documents as index.block_sizes does")
        self.scales = None if scales is None else tf.Variable(
            np.asarray(scales, np.float32), trainable=False, name="scales")
        self.document_ids = tf.Variable(ids, trainable=False, name="document_ids")
        del ids
        blocks = self.index_blocks
        binary = "bits" in blocks[0]
        self.vector_bytes = int(sum(v.shape.num_elements() * v.dtype.size
                                    for block in blocks for v in block.values())
                                + (0 if scales is None else 4 * len(scales)))

        def embed(texts):
            q = encoder.query_encoder(texts, training=False)
            if dims is not None:
                q = tf.math.l2_normalize(q[:, :dims], axis=-1, epsilon=1e-24)
            return q

        if binary:
            def score(block, q, start, end):  # minus the Hamming distance of the sign bits
                q_bits = tf.cast(q > 0, tf.int32)
                documents = (_unpack(block["bits"][start:end], dim) + 1.0) / 2.0
                agree = tf.matmul(tf.cast(q_bits, tf.float32), documents, transpose_b=True)
                ones = tf.reduce_sum(documents, axis=1)[None, :]
                disagree = tf.cast(tf.reduce_sum(q_bits, axis=1), tf.float32)[:, None] + ones \
                    - 2.0 * agree
                return -disagree
        elif "vectors" in blocks[0]:
            def score(block, q, start, end):
                return tf.matmul(q, block["vectors"][start:end], transpose_b=True)
        else:  # int8 codes
            def score(block, q, start, end):
                documents = tf.cast(block["codes"][start:end], tf.float32)
                return tf.matmul(q * self.scales, documents, transpose_b=True)

        def top_k(q, k):
            best, offset = None, 0
            for block, size in zip(blocks, sizes):
                best = chunked_top_k(q, size, k, lambda q, s, e, b=block: score(b, q, s, e),
                                     best=best, offset=offset)
                offset += size
            return best

        def gather(name, indices):  # rows of the whole index, across the blocks
            return tf.nn.embedding_lookup([block[name] for block in blocks], indices)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts"),
                                      tf.TensorSpec([], tf.int32, name="k")])
        def search(texts, k):
            tf.debugging.assert_greater_equal(k, 1, message="k must be >= 1")
            tf.debugging.assert_less_equal(k, max_k, message=f"k must be <= {max_k} (max_k)")
            q = embed(texts)
            if not binary:
                scores, indices = top_k(q, k)
            else:  # Hamming candidates, re-scored with the float query
                depth = tf.minimum(tf.maximum(k * rescore, k), rows)
                _, candidates = top_k(q, depth)
                if "codes" in blocks[0]:  # int8 re-scoring
                    vectors = tf.cast(gather("codes", candidates), tf.float32)
                    exact = tf.einsum("bd,bcd->bc", q * self.scales, vectors)
                else:
                    vectors = _unpack(gather("bits", candidates), dim)
                    exact = tf.einsum("bd,bcd->bc", q, vectors) / float(np.sqrt(dim))
                scores, position = tf.math.top_k(exact, k=k)
                indices = tf.gather(candidates, position, batch_dims=1)
            return {"ids": tf.gather(self.document_ids, indices), "scores": scores}

        self.search = search
        self.encode_query = encoder.encode_query
        self.encode_document = encoder.encode_document
        self.query_encoder = encoder.query_encoder
        self.document_encoder = encoder.document_encoder


def _encoder_module(model):
    """A tf object with query_encoder/document_encoder and the two signatures."""
    if isinstance(model, SavedModelEncoder):
        return model.module, dict(model.config)

    module = _EncoderModule(model, model.query_tokenizer(), model.document_tokenizer())
    return module, export_config(model)


def build_index(model, collection, output, dims=None, quantization="none", max_k=1000,
                rescore=10, shard_size=50_000, batch_size=64, overwrite=False, progress=True,
                shard_dir=None, rescore_vectors="sign", role=None, wait_timeout=1800.0,
                block_rows=BLOCK_ROWS):
    """Encodes ``collection.corpus`` with ``model`` (a DualEncoder or a
    :class:`~samtone_tf.export.saved_model.SavedModelEncoder`) and writes the retrieval SavedModel
    at ``output`` (atomically). Returns the index description (also in
    ``assets/samtone_index.json``).

    Shards are cached in ``<output>.shards/`` and removed once the index is written;
    with ``shard_dir`` they are cached there and kept (the same verified cache as
    ``samtone eval --cache-dir``: indexes of one model at several quantizations, or an
    evaluation, then encode the corpus once).

    Several processes (``role``, default from ``TF_CONFIG``:
    :func:`samtone_tf.devices.encoding_role`) split the corpus encoding by shard
    (:func:`encode_in_shards`; the output and shard folders on storage they all reach);
    the chief writes the index, each other process returns ``{"task", "shards"}`` (the
    shard numbers it encoded, 1-based) once its shards are written.

    The stored vectors are blocks of at most ``block_rows`` rows, made from the shards one
    at a time (module docstring), so the chief holds the corpus' vectors about once."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if rescore_vectors not in RESCORE_VECTORS:  # before encoding, not after
        raise ValueError(f"rescore_vectors must be one of {RESCORE_VECTORS}, "
                         f"got {rescore_vectors!r}")
    output = os.path.abspath(output)
    _check_output(output, overwrite)
    documents = len(collection.corpus)
    if not documents:
        raise ValueError(f"{collection.path}: the corpus is empty; nothing to index")
    work_dir = shard_dir or output + ".shards"
    refuse_link(work_dir, "shard folder")
    os.makedirs(work_dir, exist_ok=True)
    if role is None:
        slot, slots, task = encoding_role()
    else:
        (slot, slots), task = role, f"slot-{role[0]}"
    # One writer per index: the chief holds the shard folder's lock until the index is
    # written (the other slots of a cluster only add shards to it).
    lock = FolderLock(work_dir, "samtone index").acquire() if slot == 0 else None
    try:
        _check_output(output, overwrite)  # again under the lock: another run may have ended
        return _build(model, collection, output, documents, work_dir, (slot, slots), task,
                      dims, quantization, max_k, rescore, shard_size, batch_size, progress,
                      shard_dir, rescore_vectors, wait_timeout, block_rows, lock)
    finally:
        if lock is not None:
            lock.release()


def _build(model, collection, output, documents, work_dir, role, task, dims, quantization,
           max_k, rescore, shard_size, batch_size, progress, shard_dir, rescore_vectors,
           wait_timeout, block_rows, lock):
    slot, slots = role
    parts = encode_in_shards(model, CorpusRows(collection.corpus), work_dir, shard_size,
                             batch_size, progress, None, (slot, slots), wait_timeout,
                             concatenate=False)
    if parts is None:  # not the chief: its shards are in work_dir
        count = -(-documents // shard_size)
        return {"task": task, "shards": [n + 1 for n in range(count) if n % slots == slot]}
    dim = int(truncate(parts[0][:1], dims).shape[1])  # parts: memory-mapped shard views
    scales = None
    if quantization == "int8" or (quantization == "binary" and rescore_vectors == "int8"):
        scales = int8_scales(truncate(part, dims) for part in parts)  # one part at a time
    encoder, config = _encoder_module(model)
    max_k = int(min(max_k, documents))
    sizes = block_sizes(documents, block_rows)
    index = _Index(encoder, index_blocks(parts, sizes, quantization, rescore_vectors, scales,
                                       dims),
                   ids_tensor(CorpusRows(collection.corpus)), dim, dims, max_k, int(rescore),
                   scales)
    description = {
        "format": "samtone_tf retrieval SavedModel v1", "documents": documents,
        "dim": dim, "dims": dims, "quantization": quantization,
        "max_k": max_k, "rescore": int(rescore) if quantization == "binary" else None,
        "rescore_vectors": rescore_vectors if quantization == "binary" else None,
        "vector_bytes": index.vector_bytes, "blocks": sizes,
        "collection": collection.path, "split": collection.split,
        "signatures": {"search": {"inputs": {"texts": "tf.string [None]", "k": "int32 []"},
                                  "outputs": {"ids": "tf.string [None, k]",
                                              "scores": "float32 [None, k]"}}},
        "requires": "import tensorflow_text before loading",
    }

    def fill(folder):
        tf.saved_model.save(index, folder, signatures={
            "search": index.search, "encode_query": index.encode_query,
            "encode_document": index.encode_document, "serving_default": index.encode_query})
        write_assets(folder, {INDEX_ASSET: description, CONFIG_ASSET: config})

    write_folder_atomic(output, fill)
    if shard_dir is None:
        _remove_shards(work_dir, lock)
    return description


def _check_output(output, overwrite):
    """A new folder, or (with ``overwrite``) an index this module wrote; never another
    folder or a file."""
    check_replaceable(output, overwrite, is_index, "an index written by samtone index",
                      FileExistsError)


def _remove_shards(work_dir, lock):
    """Removes the shard folders the encoder wrote (sha256-named,
    :mod:`samtone_tf.retrieval.encoder`) and its lock, then the folder if nothing else is
    in it."""
    import re
    import shutil

    for name in os.listdir(work_dir):
        if re.fullmatch(r"[0-9a-f]{64}", name):
            shutil.rmtree(os.path.join(work_dir, name))
    lock.release(remove=True)
    if not os.listdir(work_dir):
        os.rmdir(work_dir)


def is_index(path):
    """True when ``path`` is a folder written by :func:`build_index`."""
    return os.path.isfile(os.path.join(path, "assets", INDEX_ASSET))


def load_index(path):
    """(the loaded retrieval SavedModel, its description) for an index folder; a
    DataError naming the file when it cannot be read (truncated, tampered). The
    document ids stay a tensor in the module (:func:`index_ids` decodes them): 8.8M ids
    as Python strings cost 1 GB that serving does not need."""
    import json

    tensorflow_text()  # registers the tokenizer ops

    asset = os.path.join(path, "assets", INDEX_ASSET)
    try:
        with open(asset, encoding="utf-8") as handle:
            description = json.load(handle)
        max_k, documents = int(description["max_k"]), int(description["documents"])
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{asset}: not an index description ({type(error).__name__}: "
                        f"{error})") from None
    try:
        module = tf.saved_model.load(path)
        held = int(module.document_ids.shape[0])
    except (tf.errors.OpError, ValueError, KeyError, AttributeError, TypeError,
            OSError) as error:
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{path}: the index cannot be loaded ({type(error).__name__}: "
                        f"{reason})") from None
    if held != documents or max_k < 1:
        raise DataError(f"{asset}: describes {documents} documents and max_k {max_k}, but the "
                        f"index holds {held} document ids")
    return module, description


def index_ids(module, path="index"):
    """The document ids of a loaded index, in its row order, as strings."""
    try:
        return [value.decode("utf-8") for value in module.document_ids.numpy()]
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: a document id is not UTF-8 ({error.reason})") from None
