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

PAD_ID = 0
CLS_ID = 1


def _pad(ragged_ids, max_length, pad_to_max_length):
    ragged_ids = ragged_ids[:, :max_length]
    if pad_to_max_length:
        ids = ragged_ids.to_tensor(default_value=PAD_ID, shape=[None, max_length])
    else:
        ids = ragged_ids.to_tensor(default_value=PAD_ID)
    lengths = ragged_ids.row_lengths()
    mask = tf.sequence_mask(lengths, maxlen=tf.shape(ids)[1], dtype=tf.int32)
    return {"token_ids": tf.cast(ids, tf.int32), "padding_mask": mask}


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
        cls = tf.fill([tf.shape(texts)[0], 1], tf.constant(CLS_ID, tf.int64))
        ids = tf.concat([tf.RaggedTensor.from_tensor(cls), hashed], axis=1)
        return _pad(ids, self.max_length, self.pad_to_max_length)
