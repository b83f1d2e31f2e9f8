"""The shared data folder beside the repository (../shared/data): tests that truly
need it skip with a reason that names it when it is absent (a bare clone)."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))


def shared(*parts):
    """Path under ../shared/data, or skip the test naming the missing path."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs {path}: the shared data folder beside the repository "
                    "(scifact, reqa-squad, cranfield), absent in this checkout")
    return path
