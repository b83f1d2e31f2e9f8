"""Corpus encoding in memory: chunked, verified against NaN/Inf, cached by a model
fingerprint (the sharded, memory-mapped encoder is :mod:`samtone_tf.retrieval.encoder`)."""

from __future__ import annotations

import numpy as np

from samtone_tf.errors import DataError
from samtone_tf.files import atomic_path, write_json_atomic


class NonFiniteEmbeddingsError(DataError):
    """An encoder returned NaN/Inf; nothing is scored from it."""


def check_finite_embeddings(embeddings, side="document", ids=None):
    """Raises NonFiniteEmbeddingsError naming the first bad row (its id when given)."""
    bad = ~np.isfinite(embeddings).all(axis=1) if embeddings.size else np.zeros(0, bool)
    if bad.any():
        first = int(np.argmax(bad))
        name = f"id {ids[first]!r}" if ids is not None else f"row {first}"
        raise NonFiniteEmbeddingsError(
            f"{int(bad.sum())} of {len(embeddings)} {side} embeddings hold NaN/Inf (first: "
            f"{name}); refusing to compute metrics from them")


def encode_corpus(model, texts, batch_size=256, cache_dir=None, fingerprint=None,
                  progress=True, side="document", ids=None):
    """Encodes texts in chunks with a progress bar; refuses NaN/Inf embeddings.

    With ``cache_dir`` and a model ``fingerprint`` (:func:`model_fingerprint`: weights,
    tokenizer assets, max lengths, dimension), embeddings are cached in
    ``cache_dir/<sha256>.npy``, keyed by the fingerprint, the side and every text, with
    a ``.json`` record of rows, dimension, dtype and a checksum. A cached file is used
    only when it matches that record, has one row per text and is finite; otherwise it
    is re-encoded with a warning."""
    import keras

    cache_path = None
    if cache_dir is not None and fingerprint is not None:
        cache_path = embedding_cache_path(cache_dir, fingerprint, side, texts)
        cached = _read_cache(cache_path, len(texts), getattr(model, "embedding_dim", None))
        if cached is not None:
            return cached
    encode = model.encode_documents if side == "document" else model.encode_queries
    chunk = max(batch_size * 16, 1)
    bar = keras.utils.Progbar(len(texts), unit_name=side) if progress and texts else None
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(encode(texts[start:start + chunk], batch_size=batch_size))
        if bar is not None:
            bar.add(len(parts[-1]))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    check_finite_embeddings(embeddings, side, ids)
    if cache_path is not None:
        _write_cache(cache_path, np.ascontiguousarray(embeddings, np.float32))
    return embeddings


def embedding_cache_path(cache_dir, fingerprint, side, texts):
    """``cache_dir/<sha256>.npy``: the cache file of ``encode_corpus`` for these texts
    (keyed by the model fingerprint, the side and every text)."""
    import hashlib
    import os

    digest = hashlib.sha256(f"{fingerprint}|{side}|{len(texts)}".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return os.path.join(cache_dir, digest.hexdigest() + ".npy")


def read_embedding_cache(path, rows, dim=None):
    """The verified cached array at ``path`` (see :func:`encode_corpus`), or None when
    it is not there or not complete yet (its ``.json`` record is written last)."""
    import os

    if not os.path.exists(path[:-len(".npy")] + ".json"):
        return None
    return _read_cache(path, rows, dim)


def _checksum(array):
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _read_cache(path, rows, dim=None):
    """The cached array when it is exactly what was written for these texts, else
    None (with a warning when a file was there but did not pass)."""
    import json
    import os
    import warnings

    if not os.path.exists(path):
        return None
    try:
        with open(path[:-len(".npy")] + ".json", encoding="utf-8") as handle:
            record = json.load(handle)
        array = np.load(path, allow_pickle=False)
        problems = [
            (array.ndim != 2, f"shape {array.shape} is not [rows, dim]"),
            (array.ndim == 2 and array.shape[0] != rows, f"{len(array)} rows for {rows} texts"),
            (array.ndim == 2 and dim is not None and array.shape[1] != int(dim),
             f"dimension {array.shape[-1]}, the model's is {dim}"),
            (array.dtype != np.float32, f"dtype {array.dtype}, expected float32"),
            (list(array.shape) != record.get("shape"), "shape differs from its record"),
            (not np.isfinite(array).all(), "non-finite values"),
            (_checksum(array) != record.get("sha256"), "checksum differs from its record "
                                                       "(changed or reordered)")]
        problem = next((why for bad, why in problems if bad), None)
    except (OSError, ValueError, KeyError, AttributeError) as error:
        problem = f"unreadable ({type(error).__name__}: {error})"
    if problem is None:
        return array
    warnings.warn(f"embedding cache {path}: {problem}; re-encoding", stacklevel=3)
    return None


def _write_cache(path, embeddings):
    import os

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path, suffix=".npy") as temporary:
        np.save(temporary, embeddings)
    write_json_atomic(path[:-len(".npy")] + ".json", {
        "shape": list(embeddings.shape), "dtype": "float32", "sha256": _checksum(embeddings)})


def _settings(obj):
    """The public attributes of ``obj`` that JSON can write, as sorted JSON: the
    whole configuration of a backbone spec (tokenizer settings such as ``lowercase``,
    vocabulary, sizes) without naming each one."""
    import json

    out = {}
    for key, value in sorted(vars(obj).items()):
        if key.startswith("_"):
            continue
        try:
            out[key] = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError):
            continue
    return json.dumps(out, sort_keys=True)


def model_fingerprint(model):
    """sha256 over everything that shapes a model's embeddings: weights, the model's
    configuration (architecture, pooling, max lengths, padding, ...), the backbone's
    whole configuration (tokenizer settings such as lower-casing included) and its
    tokenizer assets (vocabulary / SentencePiece model) by content; for a reloaded
    SavedModel every file of the SavedModel (graph with its tokenizer and lengths,
    assets, variables)."""
    import hashlib
    import json
    import os

    digest = hashlib.sha256(repr(getattr(model, "backbone", model)).encode())
    for name in ("architecture", "query_max_length", "document_max_length", "pooling",
                 "embedding_dim"):
        digest.update(f"{name}={getattr(model, name, None)!r};".encode())
    if callable(getattr(model, "get_config", None)):
        config = {k: v for k, v in model.get_config().items()  # what shapes embeddings
                  if k not in ("name", "trainable", "remat", "encode_jit_compile", "dropout_seed")}
        digest.update(json.dumps(config, sort_keys=True, default=repr).encode())
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        digest.update(_settings(backbone).encode())
    for name in ("vocabulary", "vocab_path", "model_path"):
        asset = getattr(backbone, name, None)
        if isinstance(asset, str) and os.path.isfile(asset):
            with open(asset, "rb") as handle:
                digest.update(handle.read())
    folder = getattr(model, "path", None)
    if isinstance(folder, str) and os.path.isdir(folder):  # SavedModelEncoder
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, folder).encode())
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
        return digest.hexdigest()
    for weight in getattr(model, "weights", []):
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()
