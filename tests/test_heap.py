"""samtone_tf.heap: the malloc arena cap takes effect (counted by glibc's own
malloc_info), the environment wins, and `samtone` sets it before TensorFlow loads."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

from samtone_tf import heap

GLIBC = heap._libc() is not None
needs_glibc = pytest.mark.skipif(not GLIBC, reason="glibc only")

# Eight threads each malloc and keep a block (glibc gives a new thread its own arena while
# the cap allows), then glibc's malloc_info counts the arenas ("<heap nr=...>").
COUNT_ARENAS = r"""
import ctypes, json, os, re, sys, tempfile, threading
sys.path.insert(0, {root!r})
from samtone_tf import heap
capped = heap.limit_arenas({arenas}) if {arenas} else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
barrier = threading.Barrier(8)
def work():
    libc.malloc(100000)
    barrier.wait()  # all eight alive at once: none can hand its arena to another
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
path = os.path.join(tempfile.mkdtemp(), "info.xml")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
handle = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, handle)
libc.fclose(handle)
print(json.dumps({{"capped": capped,
                  "arenas": len(re.findall("<heap nr=", open(path).read()))}}))
"""


def _arenas(arenas, env=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(heap.__file__)))
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-c", COUNT_ARENAS.format(root=root, arenas=arenas)],
                          capture_output=True, text=True, env=environment, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_glibc
def test_limit_arenas_caps_what_glibc_counts():
    free = _arenas(0)  # glibc's default: up to 8 per core, a new one per new thread
    capped = _arenas(2)
    assert capped == {"capped": True, "arenas": 2}
    assert free["arenas"] > 2, free  # the eight threads did spread without the cap


@needs_glibc
def test_the_environment_wins():
    assert _arenas(2, {"MALLOC_ARENA_MAX": "3"}) == {"capped": False, "arenas": 3}


def test_bad_cap_and_no_glibc(monkeypatch):
    with pytest.raises(ValueError, match="arenas must be >= 1"):
        heap.limit_arenas(0)
    monkeypatch.setattr(heap, "_libc", lambda: None)  # musl, macOS, Windows
    assert heap.limit_arenas(2) is False and heap.trim() is False


def _anon_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon")) / 1e3


@needs_glibc
def test_trim_returns_freed_pages():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(4000) for _ in range(20000)]  # 80 MB of small heap blocks
    for block in blocks:
        ctypes.memset(block, 1, 4000)
    for block in blocks[:-1]:  # the last one stays: free() alone cannot shrink the heap
        libc.free(block)
    held = _anon_mb()
    assert heap.trim() is True
    assert _anon_mb() < held - 60  # the freed 80 MB left the process
    libc.free(blocks[-1])


def test_samtone_caps_arenas_before_tensorflow_loads():
    """`samtone` calls limit_arenas first, before any TensorFlow import (threads made
    before the cap keep their arenas); a failing command still gets there."""
    code = r"""
import json, sys
import samtone_tf.heap as heap
calls = []
heap.limit_arenas = lambda arenas=2: calls.append("tensorflow" in sys.modules) or True
from samtone_tf.cli.main import main
code = main(["eval", "--model", "/nonexistent/model", "--data", "/nonexistent/data"])
print(json.dumps({"calls": calls, "code": code}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["calls"] == [False]  # once, with TensorFlow not yet imported
    assert result["code"] != 0  # the bad paths still fail with their own message


def test_heap_collect_frees_unreachable_cycles():
    """heap.collect runs Python's collector (a reference cycle's object dies) then trims."""
    import gc
    import weakref

    class Node:
        pass

    node = Node()
    node.self = node
    ref = weakref.ref(node)
    del node
    gc.disable()
    try:
        assert ref() is not None  # a cycle: reference counting alone keeps it
        heap.collect()
        assert ref() is None
    finally:
        gc.enable()
