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


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory):
    """A 40-document BEIR copy of the shipped SciFact (16 train, 10 test queries): for
    command-line tests where what is checked is a file, a path or an exit code."""
    from tests.helpers.small_collection import write_small_scifact

    return write_small_scifact(tmp_path_factory.mktemp("tiny") / "scifact", documents=40,
                               train_queries=16, test_queries=10)


@pytest.fixture(scope="session")
def small_savedmodel(tmp_path_factory):
    """A SavedModel of a tiny small tower (fast to encode). Tests only read it."""
    from samtone_tf.export import export_saved_model
    from samtone_tf.models import DualEncoder, SmallTransformer

    path = tmp_path_factory.mktemp("model") / "savedmodel"
    spec = SmallTransformer(vocab_size=512, hidden_dim=16, num_layers=1, num_heads=2,
                            intermediate_dim=32, max_length=64)
    export_saved_model(DualEncoder(spec, query_max_length=16, document_max_length=32), str(path))
    return str(path)
