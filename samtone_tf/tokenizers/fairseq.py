"""XLM-RoBERTa's tokenization in the graph: SentencePiece pieces numbered the fairseq way.

XLM-R (and multilingual-E5, BGE-M3, ...) keep the SentencePiece model they were trained
with (``sentencepiece.bpe.model``, a unigram model despite its name) but number its pieces
as fairseq's dictionary does: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, and every
other piece at its SentencePiece id + 1 (SentencePiece's own ``<unk>``, ``<s>``, ``</s>``
are its ids 0, 1, 2). A text becomes ``<s> pieces </s>``, truncated to ``max_length``
tokens with both specials kept, padded with ``<pad>``.

The pieces come from ``tensorflow_text.FastSentencepieceTokenizer``. Not from
``SentencepieceTokenizer``: that op's bundled SentencePiece breaks ties between
equal-score segmentations the other way round from the SentencePiece library (0.2) and
Hugging Face's ``tokenizers`` ("1,000" → ``▁1 , 00 0`` instead of ``▁1 , 0 00``),
which on a 800-piece model trained on SciFact changed 19 of 3,124 SciFact lines; the fast
op agrees with Hugging Face on all of them (tests/test_families.py). One character apart:
the fast op leaves U+0085 (NEL) unknown where the model's NFKC rules (and Hugging Face)
make it a space; of the 13,053 characters U+0001–U+30FF and U+FE00–U+FFFD between two
letters it is the only one that differed, so it becomes a space first.
"""

from __future__ import annotations

import tensorflow as tf

from samtone_tf.tokenizers.in_graph import surround
from samtone_tf.tokenizers.text_ops import tensorflow_text

BOS_ID, PAD_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPM_UNK, SPM_BOS, SPM_EOS = 0, 1, 2


class FairseqSentencePieceTokenizer:
    """``<s> pieces </s>`` with fairseq's ids (see the module), in the graph.

    Args:
        model: path to the SentencePiece ``.model`` file, or its bytes.
        max_length: tokens per sequence, ``<s>`` and ``</s>`` included.
        pad_to_max_length: pad every batch to ``max_length`` (else dynamic padding).
    """

    pad_id = PAD_ID

    def __init__(self, model, max_length: int = 512, pad_to_max_length: bool = False):
        tf_text = tensorflow_text()

        if isinstance(model, str):
            with open(model, "rb") as handle:
                model = handle.read()
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.model = model
        self.max_length = max_length
        self.pad_to_max_length = pad_to_max_length
        self._tokenizer = tf_text.FastSentencepieceTokenizer(model)
        # the fairseq dictionary: the specials, the pieces after SentencePiece's three
        # specials, then <mask> (added by the models, not by the tokenizer)
        self.vocab_size = int(self._tokenizer.vocab_size()) + 2

    def tokenize(self, texts):
        """[N] strings → ragged [N, None] int64 fairseq ids (no specials)."""
        texts = tf.strings.regex_replace(tf.convert_to_tensor(texts, tf.string), r"\x{85}", " ")
        pieces = self._tokenizer.tokenize(texts)
        pieces = tf.cast(pieces, tf.int64).with_row_splits_dtype(tf.int64)
        return tf.ragged.map_flat_values(
            lambda ids: tf.where(ids == SPM_UNK, tf.constant(UNK_ID, tf.int64), ids + 1),
            pieces)

    def __call__(self, texts):
        return surround(self.tokenize(texts), [BOS_ID], [EOS_ID], self.max_length,
                        self.pad_to_max_length, PAD_ID)
