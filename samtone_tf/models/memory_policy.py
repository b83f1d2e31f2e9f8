"""``"auto"``: the low-memory step where the host's memory holds the activations.

``DualEncoder(remat="auto")`` and ``compile(gradient_cache_chunk_size="auto")`` (the
``samtone train`` job's defaults) choose how a step is computed, never what it computes:
dropout masks are keyed on the example (:mod:`samtone_tf.layers.keyed_dropout`), so the
plain, remat and gradient-cache steps give the same update (tested to 1e-5).

On a machine without a GPU or TPU, "auto" is ``remat=True`` (each transformer layer
recomputed in the backward pass) and chunks of :data:`AUTO_CHUNK` rows when a replica
has at least that many and the global batch more (fewer: the plain step), so MiniLM's
step at batch 32 with 256-token documents keeps one layer of 4 rows' activations instead
of every layer of the whole batch (6.6 GB → about 2 GB for the default job; chunks of 4
instead of 8: 0.07 GB less at 0.97-1.09x the step time on a 2-core CPU, docs/RESULTS.md).
With a GPU or TPU "auto" is the plain step, the fastest.
"""

from __future__ import annotations

from samtone_tf.devices import has_accelerator

AUTO = "auto"
AUTO_CHUNK = 4  # rows per gradient-cache chunk under "auto"


def check_remat(remat):
    if not (remat == AUTO or isinstance(remat, bool)):
        raise ValueError(f"remat must be 'auto', true or false, got {remat!r}")


def check_chunk(chunk):
    if chunk is None or chunk == AUTO:
        return
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
        raise ValueError(f"gradient_cache_chunk_size must be 'auto', None or a positive "
                         f"integer, got {chunk!r}")


def resolve_remat(remat):
    """True or False for ``remat`` ("auto": True on a host without a GPU or TPU)."""
    check_remat(remat)
    return (not has_accelerator()) if remat == AUTO else remat


def resolve_chunk(chunk, per_replica=None, global_rows=None):
    """None or the rows per chunk for ``chunk``. "auto": :data:`AUTO_CHUNK` on a host
    without a GPU or TPU when a replica has at least that many rows and the global batch
    more (a replica with exactly one chunk still takes the cached step, so that 2
    replicas of 4 rows compute what one device does in 2 chunks of 4); an unknown count
    (None) counts as enough."""
    check_chunk(chunk)
    if chunk != AUTO:
        return chunk
    if has_accelerator():
        return None
    if per_replica is not None and per_replica < AUTO_CHUNK:
        return None
    if global_rows is not None and global_rows <= AUTO_CHUNK:
        return None
    return AUTO_CHUNK
