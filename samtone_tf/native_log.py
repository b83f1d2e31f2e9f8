"""TensorFlow's start-up lines, once and truthful.

TensorFlow 2.21 writes its start-up log from native code straight to file descriptor 2,
before its logging flags are read (``TF_CPP_MIN_LOG_LEVEL`` does not reach them), and
twice: two of its shared libraries each carry a copy of the logging library. On a
machine without a GPU it also logs an error, ``failed call to cuInit``, when it looks
for one. :func:`native_start_up` runs a block (the ``samtone`` command's import of
TensorFlow and its first look for GPUs) with descriptor 2 captured, then writes what was
captured back: each native log message once, and the cuInit error only where a GPU was
found after all. Everything else passes unchanged, in order.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

# "I0000 00:00:1796656363.260777   18282 port.cc:153] message" (TensorFlow 2.21's absl
# logging) or "2026-12-07 15:38:34.727339: E external/.../cuda_platform.cc:51] message"
# (2.20's own): the message is the key
_NATIVE = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+|\d{4}-\d\d-\d\d [\d:.]+: [IWEF]) "
                     r"[\w./-]+:\d+\] (.*)$")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"


def filter_native_lines(text, drop=()):
    """``text`` with each native log message (and absl's banner) kept once and the
    messages containing any of ``drop`` left out; other lines as they are."""
    seen, kept = set(), []
    for line in text.splitlines(keepends=True):
        match = _NATIVE.match(line.rstrip("\n"))
        key = match.group(1) if match else (line if line.startswith(_ABSL_BANNER) else None)
        if key is not None:
            if key in seen or any(part in key for part in drop):
                continue
            seen.add(key)
        kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def captured_stderr(filter_text):
    """Descriptor 2 goes to a temporary file inside the block; afterwards
    ``filter_text(captured)`` is written to ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sys.stderr.write(filter_text(capture.read().decode("utf-8", "replace")))
            sys.stderr.flush()


@contextlib.contextmanager
def native_start_up():
    """Captures descriptor 2 inside the block; if the block imported TensorFlow, looks
    for GPUs too (which does not fix the logical devices: strategies can still split the
    CPU); then writes the capture back filtered as the module docstring says. Yields the
    list of GPUs found (filled on leaving the block)."""
    found = []

    def keep(text):
        return filter_native_lines(text, drop=() if found else ("failed call to cuInit",))

    with captured_stderr(keep):
        yield found
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            found.extend(tf.config.list_physical_devices("GPU"))
