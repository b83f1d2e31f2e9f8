"""Tower families from Hugging Face folders, against the PyTorch models they come from.

A tiny random model of each family is built with ``transformers`` (tests/helpers/
hf_families.py); its tokenizer ids must equal the Hugging Face tokenizer's in the graph,
and its embeddings, in a DualEncoder and in the exported SavedModel, PyTorch's pooled
hidden states (cosine >= 0.9999) for every pooling, on long and non-ASCII texts.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers.hf_families import MULTILINGUAL, pytorch_pooled, scifact_lines, xlm_roberta_folder

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

EDGE_CASES = ["  leading spaces", "trailing spaces  ", "a  b   c", "tab\tand\nnewline", "",
              " ", "ﬁ ligature ①②", "e\u0301 combining accent", "\u00a0nbsp\u3000ideographic",
              "emoji 😀 ok", "zero\u200bwidth", "ＡＢＣ fullwidth", "1,000 and 2,000,000",
              "x" * 600]
TEXTS = ["short", "What protein binds the receptor in über-long texts? " * 12,
         "Déjà vu: a non-ASCII sentence, with punctuation!", *MULTILINGUAL[:4]]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def samtone(*args):
    return subprocess.run([sys.executable, "-m", "samtone_tf.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def xlmr(tmp_path_factory):
    return xlm_roberta_folder(str(tmp_path_factory.mktemp("families")))


def test_xlm_roberta_tokenizer_ids_equal_hugging_face(xlmr):
    """3,000+ lines (SciFact abstracts the SentencePiece model was not trained on, all
    queries, whitespace/normalization edge cases, non-ASCII), eagerly and in a
    tf.function, truncated to 128 tokens as Hugging Face truncates."""
    from samtone_tf.models.xlm_roberta import HFXLMRoberta

    lines = scifact_lines(2000) + EDGE_CASES + MULTILINGUAL
    hf = transformers.AutoTokenizer.from_pretrained(xlmr)
    tokenizer = HFXLMRoberta(xlmr).make_tokenizer(128)
    graph = tf.function(tokenizer)
    for start in range(0, len(lines), 512):
        chunk = lines[start:start + 512]
        want = hf(chunk, truncation=True, max_length=128)["input_ids"]
        for out in (tokenizer(tf.constant(chunk)), graph(tf.constant(chunk))):
            ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
            got = [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)]
            assert got == want
            assert (ids[mask == 0] == hf.pad_token_id).all()
    assert len(lines) > 3000


@pytest.mark.parametrize("pooling", ["mean", "cls", "last_token"])
def test_xlm_roberta_tower_equals_pytorch(xlmr, pooling):
    """A DualEncoder of the folder (SDE; ADE's query tower too) embeds as PyTorch does;
    the texts run past the 128 positions and include non-ASCII."""
    from samtone_tf.models import DualEncoder, get_backbone

    spec = get_backbone(xlmr)
    assert type(spec).__name__ == "HFXLMRoberta" and spec.max_length == 128
    want = pytorch_pooled(xlmr, TEXTS, pooling, 128)
    for architecture in ("sde", "ade"):
        model = DualEncoder(spec, architecture=architecture, pooling=pooling)
        ours = model.encode_queries(TEXTS)
        assert (np.asarray(ours) * want).sum(1).min() >= 0.9999, architecture


def test_xlm_roberta_export_equals_pytorch_with_prompts(xlmr, tmp_path):
    """`samtone export --pretrained FOLDER --pooling last_token` with E5's prompts: both
    signatures of the SavedModel equal PyTorch on the prompted texts."""
    out = samtone("export", "--pretrained", xlmr, "--pooling", "last_token",
                  "--query-prompt", "query: ", "--document-prompt", "passage: ",
                  "--output", str(tmp_path / "zs"))
    assert out.returncode == 0, out.stderr[-3000:]
    module = tf.saved_model.load(str(tmp_path / "zs"))
    for signature, prefix in (("encode_query", "query: "), ("encode_document", "passage: ")):
        want = pytorch_pooled(xlmr, TEXTS, "last_token", 128, prefix)
        ours = module.signatures[signature](texts=tf.constant(TEXTS))["embeddings"].numpy()
        assert (ours * want).sum(1).min() >= 0.9999, signature
    config = json.loads((tmp_path / "zs" / "assets" / "samtone_config.json").read_text())
    assert config["backbone"].startswith("HFXLMRoberta") and config["query_prompt"] == "query: "


def test_xlm_roberta_keras_file_loads_without_the_folder(xlmr, tmp_path):
    """The .keras file carries the SentencePiece model: loaded after the folder is gone,
    it tokenizes and embeds as before."""
    import shutil

    import keras

    from samtone_tf.models import DualEncoder, get_backbone

    folder = shutil.copytree(xlmr, tmp_path / "copy")
    model = DualEncoder(get_backbone(str(folder)), architecture="ade", pooling="mean")
    before = np.asarray(model.encode_documents(TEXTS))
    model.save(tmp_path / "model.keras")
    shutil.rmtree(folder)
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(loaded.encode_documents(TEXTS)), before, atol=1e-6)


def test_unsupported_family_is_refused_naming_it(tmp_path):
    from samtone_tf.errors import DataError
    from samtone_tf.models import get_backbone

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(DataError, match=r"config.json: model_type 'gpt2' is not a supported"):
        get_backbone(str(tmp_path))


def test_xlm_roberta_without_sentencepiece_model_is_refused(xlmr, tmp_path):
    import shutil

    from samtone_tf.errors import DataError
    from samtone_tf.models import get_backbone

    folder = shutil.copytree(xlmr, tmp_path / "copy")
    os.remove(folder / "sentencepiece.bpe.model")
    with pytest.raises(DataError, match="no sentencepiece.bpe.model"):
        get_backbone(str(folder))
