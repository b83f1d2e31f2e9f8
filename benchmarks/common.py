"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this
folder is on ``sys.path``)."""

import json
import os
import subprocess
import sys

import numpy as np

RESULT = "RESULT "


def print_result(result):
    """What a child process prints for :func:`run_child` to read."""
    print(RESULT + json.dumps(result), flush=True)


def run_child(arguments, label, timeout=None, stderr_lines=1, env=None):
    """``python ARGUMENTS`` in a fresh process (peak memory is a per-process high-water
    mark, and XLA / precision settings are per process), with ``env`` added to its
    environment: the dict of its last :func:`print_result` line, or ``{**label,
    "failed": ..., "stderr": [...]}``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    try:
        done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**label, "failed": f"timeout {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if lines:
        return json.loads(lines[-1][len(RESULT):])
    return {**label, "failed": done.returncode,
            "stderr": done.stderr.strip().splitlines()[-stderr_lines:]}


def full_length_tokens(rng, batch, length):
    """A token dict of random word-piece ids, every row ``length`` tokens long (no
    padding), so every row of a timed step costs the same."""
    ids = rng.integers(1000, 30000, size=(batch, length)).astype("int32")
    return {"token_ids": ids, "padding_mask": np.ones_like(ids)}
