import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_scifact(tmp_path_factory):
    """A 150-document BEIR copy of the shipped SciFact (tests/helpers/small_collection.py),
    written once per test session: for tests of a whole job where the corpus size checks
    nothing. Tests only read it."""
    from tests.helpers.small_collection import write_small_scifact

    return write_small_scifact(tmp_path_factory.mktemp("small") / "scifact")
