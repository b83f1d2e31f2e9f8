"""Tokenizers that run inside TensorFlow graphs (tf.data and exported models).

Each tokenizer maps a [N] string tensor to ``{"token_ids": [N, L] int32,
"padding_mask": [N, L] int32}`` with L = min(max_length, longest sequence in the
batch) (dynamic padding), or L = max_length with ``pad_to_max_length=True``.

* :class:`HashingTokenizer`: no vocabulary file; lower-cased words and single
  punctuation marks hashed into ``vocab_size - 2`` buckets (ids ≥ 2; 0 is
  padding, 1 the leading [CLS]-like token). For from-scratch towers.
"""

from __future__ import annotations

import tensorflow as tf

from samtone_tf.tokenizers.text_ops import tensorflow_text

PAD_ID = 0
CLS_ID = 1


def _pad(ragged_ids, max_length, pad_to_max_length, pad_id=PAD_ID):
    ragged_ids = ragged_ids[:, :max_length]
    pad = tf.constant(pad_id, ragged_ids.dtype)
    if pad_to_max_length:
        ids = ragged_ids.to_tensor(default_value=pad, shape=[None, max_length])
    else:
        ids = ragged_ids.to_tensor(default_value=pad)
    lengths = ragged_ids.row_lengths()
    mask = tf.sequence_mask(lengths, maxlen=tf.shape(ids)[1], dtype=tf.int32)
    return {"token_ids": tf.cast(ids, tf.int32), "padding_mask": mask}


def check_room(max_length, prefix, suffix):
    if max_length < len(prefix) + len(suffix) + 1:
        raise ValueError(f"max_length {max_length} leaves no room for a token between "
                         f"{len(prefix) + len(suffix)} special tokens")


def surround(pieces, prefix, suffix, max_length, pad_to_max_length, pad_id):
    """``prefix pieces suffix`` per row (pieces: ragged [N, None] int64, cut so that the
    row fits ``max_length``), padded with ``pad_id``: the tokenizers' output dict."""
    pieces = pieces.with_row_splits_dtype(tf.int64)[:, :max_length - len(prefix) - len(suffix)]
    parts, rows = [pieces], pieces.nrows()
    for ids, first in ((prefix, True), (suffix, False)):
        if ids:
            block = tf.RaggedTensor.from_tensor(
                tf.tile(tf.constant([list(ids)], tf.int64), [rows, 1]),
                row_splits_dtype=tf.int64)
            parts.insert(0 if first else len(parts), block)
    return _pad(tf.concat(parts, axis=1), max_length, pad_to_max_length, pad_id=pad_id)


class HashingTokenizer:
    """Vocabulary-free tokenizer: [CLS] + hash(word) for each word / punctuation.

    >>> import tensorflow as tf
    >>> out = HashingTokenizer(vocab_size=1000, max_length=8)(tf.constant(["Hi, there!", "ok"]))
    >>> out["padding_mask"].numpy().tolist()
    [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    """

    def __init__(self, vocab_size: int = 30522, max_length: int = 64,
                 pad_to_max_length: bool = False):
        if vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3, got {vocab_size}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.pad_to_max_length = pad_to_max_length

    def __call__(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        lowered = tf.strings.lower(texts, encoding="utf-8")
        spaced = tf.strings.regex_replace(lowered, r"([^\w\s])", r" \1 ")
        words = tf.strings.split(spaced)
        hashed = tf.strings.to_hash_bucket_fast(words, self.vocab_size - 2) + 2
        return surround(hashed, [CLS_ID], [], self.max_length, self.pad_to_max_length, PAD_ID)


def hf_bert_normalize(texts):
    """The Hugging Face BERT (uncased) normaliser, in TensorFlow ops.

    As the ``tokenizers`` BertNormalizer: drop NUL, U+FFFD and control / format /
    private-use characters (tab, newline and carriage return become spaces),
    every Unicode space becomes " ", then lower-case, NFD, and drop non-spacing
    marks (accents).
    """
    tf_text = tensorflow_text()

    texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
    texts = tf.strings.regex_replace(texts, r"[\x{0}\x{FFFD}\p{Cc}\p{Cf}\p{Co}\p{Cs}]", "")
    texts = tf.strings.regex_replace(texts, r"\p{Z}", " ")
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf_text.normalize_utf8(texts, "NFD")
    return tf.strings.regex_replace(texts, r"\p{Mn}", "")


class WordPieceTokenizer:
    """BERT WordPiece tokenization equal to Hugging Face's (uncased), in-graph.

    ``[CLS] wordpieces [SEP]``, truncated to ``max_length`` tokens (specials
    included), padded with ``[PAD]`` (id 0 in BERT vocabularies).

    Args:
        vocab: a vocab.txt path or a list of tokens.
        max_length: tokens per sequence, [CLS] and [SEP] included.
        lowercase: apply :func:`hf_bert_normalize` (uncased models).
        pad_to_max_length: pad every batch to ``max_length`` (else dynamic padding).
    """

    def __init__(self, vocab, max_length: int = 256, lowercase: bool = True,
                 pad_to_max_length: bool = False):
        tf_text = tensorflow_text()

        if isinstance(vocab, str):
            with open(vocab, encoding="utf-8") as handle:
                vocab = [line.rstrip("\n") for line in handle]
        self.vocab = list(vocab)
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        index = {token: i for i, token in enumerate(self.vocab)}
        for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
            if special not in index:
                raise ValueError(f"vocabulary lacks {special}")
        if index["[PAD]"] != PAD_ID:
            raise ValueError(f"[PAD] must have id {PAD_ID}, has {index['[PAD]']}")
        self.cls_id, self.sep_id = index["[CLS]"], index["[SEP]"]
        self.max_length = max_length
        self.lowercase = lowercase
        self.pad_to_max_length = pad_to_max_length
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocab), tf.range(len(self.vocab), dtype=tf.int64)),
            default_value=index["[UNK]"])
        self._tokenizer = tf_text.BertTokenizer(
            table, token_out_type=tf.int64, lower_case=False, normalization_form=None)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, texts):
        """[N] strings → ragged [N, None] int64 wordpiece ids (no specials)."""
        texts = tf.convert_to_tensor(texts, tf.string)
        if self.lowercase:
            texts = hf_bert_normalize(texts)
        return self._tokenizer.tokenize(texts).merge_dims(1, 2)

    def __call__(self, texts):
        return surround(self.tokenize(texts), [self.cls_id], [self.sep_id], self.max_length,
                        self.pad_to_max_length, PAD_ID)


class SentencePieceTokenizer:
    """SentencePiece tokenization (T5-style) with ``tensorflow_text``, in-graph.

    ``pieces [EOS]`` truncated to ``max_length`` (EOS included), padded with the
    model's pad id, which must be 0 (T5's convention).

    Args:
        model: path to a SentencePiece ``.model`` file, or its bytes.
    """

    def __init__(self, model, max_length: int = 256, pad_to_max_length: bool = False):
        tf_text = tensorflow_text()

        if isinstance(model, str):
            with open(model, "rb") as handle:
                model = handle.read()
        self.model = model
        self.max_length = max_length
        self.pad_to_max_length = pad_to_max_length
        self._tokenizer = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)
        if int(self._tokenizer.string_to_id("<pad>").numpy()) != PAD_ID:
            raise ValueError("the SentencePiece model's <pad> must have id 0")
        self.eos_id = int(self._tokenizer.string_to_id("</s>").numpy())
        self.vocab_size = int(self._tokenizer.vocab_size().numpy())

    def tokenize(self, texts):
        """[N] strings → ragged [N, None] int64 piece ids (no EOS)."""
        pieces = self._tokenizer.tokenize(tf.convert_to_tensor(texts, tf.string))
        return tf.cast(pieces, tf.int64)

    def __call__(self, texts):
        return surround(self.tokenize(texts), [], [self.eos_id], self.max_length,
                        self.pad_to_max_length, PAD_ID)
