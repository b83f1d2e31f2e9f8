"""What an index stores: Matryoshka truncation, int8 codes with per-dimension scales,
sign bits (binary)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from samtone_tf.errors import ConfigError

QUANTIZATIONS = ("none", "int8", "binary")


RESCORE_VECTORS = ("sign", "int8")  # what a binary index re-scores its candidates against


def truncate(embeddings, dims):
    """The first ``dims`` coordinates, L2-normalised again (None: unchanged)."""
    embeddings = np.asarray(embeddings, np.float32)
    if dims is None or dims == embeddings.shape[1]:
        return embeddings
    if not 0 < dims <= embeddings.shape[1]:
        raise ConfigError(f"dims must be in [1, {embeddings.shape[1]}], got {dims}")
    cut = embeddings[:, :dims]
    return cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)


def int8_scales(parts):
    """Per-dimension symmetric int8 scales, max_i |x_ij| / 127, over arrays of rows."""
    peak = np.max([np.abs(np.asarray(part, np.float32)).max(axis=0) for part in parts], axis=0)
    return (np.maximum(peak, 1e-12) / 127.0).astype(np.float32)


def quantize(embeddings, quantization, rescore_vectors="sign", scales=None):
    """The stored arrays: {"vectors": float32} | {"codes": int8, "scales": float32 [D]}
    | {"bits": uint8 [N, ceil(D/8)]} (+ int8 codes and scales with
    ``rescore_vectors="int8"``). ``scales``: the int8 scales to use (e.g. the whole
    corpus' when ``embeddings`` is one block of it); default: these rows'."""
    embeddings = np.asarray(embeddings, np.float32)
    if quantization == "none":
        return {"vectors": embeddings}
    if quantization == "int8":
        scales = int8_scales([embeddings]) if scales is None else scales
        codes = np.clip(np.rint(embeddings / scales), -127, 127).astype(np.int8)
        return {"codes": codes, "scales": np.asarray(scales, np.float32)}
    if quantization == "binary":
        bits = {"bits": np.packbits(embeddings > 0, axis=1)}
        if rescore_vectors == "int8":
            bits.update(quantize(embeddings, "int8", scales=scales))
        elif rescore_vectors not in RESCORE_VECTORS:
            raise ValueError(f"rescore_vectors must be one of {RESCORE_VECTORS}, "
                             f"got {rescore_vectors!r}")
        return bits
    raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")


def _unpack(bits, dim):
    """uint8 [..., ceil(D/8)] → ±1 float32 [..., D] (np.packbits' big-endian order)."""
    shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)
    unpacked = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits[..., None], shifts), 1)
    flat = tf.reshape(unpacked, tf.concat([tf.shape(bits)[:-1], [-1]], 0))[..., :dim]
    return tf.cast(flat, tf.float32) * 2.0 - 1.0
