"""The C heap under TensorFlow on Linux/glibc: fewer malloc arenas, freed pages returned.

TensorFlow's CPU kernels, its graph building and tf.data allocate small blocks with the
C library's ``malloc``. glibc gives every new thread its own arena (up to 8 per core)
and keeps the pages freed in each; TensorFlow's thread pools spread a step's temporary
blocks over many arenas, and what one arena freed another cannot reuse. With the default
job's training step (all-MiniLM-L6-v2, batch 32, 2 cores) a cap of 2 arenas instead of
glibc's 16 lowered a training process' peak from 2.00 to 1.90 GB, at no cost in step
time (``benchmarks/memory.py --breakdown``; docs/RESULTS.md).

``samtone`` applies :func:`limit_arenas` before it imports TensorFlow; a Python
program can call it first thing too (arenas made before the call stay). An arena cap
is the C library's documented ``mallopt(M_ARENA_MAX)``, also reachable as the
environment variable ``MALLOC_ARENA_MAX``, which wins: where it is set, nothing is
changed. Elsewhere than glibc both functions do nothing and return False.
"""

from __future__ import annotations

import ctypes
import gc
import os

M_ARENA_MAX = -8  # glibc's malloc.h
DEFAULT_ARENAS = 2  # docs/RESULTS.md: 2 arenas vs glibc's 8 per core, the default job


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS, Windows)
        return None


def limit_arenas(arenas=DEFAULT_ARENAS):
    """Caps glibc's malloc arenas at ``arenas`` (threads made afterwards share them)
    unless ``MALLOC_ARENA_MAX`` is set in the environment; True when the cap was set."""
    if int(arenas) < 1:
        raise ValueError(f"arenas must be >= 1, got {arenas!r}")
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))


def trim():
    """Returns the C heap's free pages to the system (glibc ``malloc_trim(0)``, every
    arena); True when some were returned."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


def collect():
    """Python's garbage collection, then :func:`trim`: what unreachable Python objects
    held (traced functions, optimizer slots, a SavedModel's graphs) goes back to the
    system, not only to the C heap's free lists; True when pages were returned."""
    gc.collect()
    return trim()
