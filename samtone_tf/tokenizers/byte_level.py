"""Byte-level BPE in the graph (Qwen 2 / Qwen 3 tokenizers), equal to Hugging Face's.

Hugging Face's Qwen tokenizers normalise to NFC, split the text with

    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+

then map each piece's UTF-8 bytes to characters and merge them by rank. RE2 (TensorFlow's
regex engine) has no look-ahead, so ``\\s+(?!\\S)`` cannot be written. Its only effect is
on a run of two or more whitespace characters (newlines aside) followed by a non-space
character: the run's last character is left to start the next piece (" hello", " (").
:func:`qwen2_split` makes that cut first — a marker between the run's last two
characters, found with a look-ahead-free pattern — and then splits each part with the
pattern without the look-ahead alternative, which on such parts matches the same pieces
(the reasoning is in docs/guides/architectures.md; tests/test_families.py checks the ids
on 3,000+ lines). ``\\s`` is Unicode whitespace as in Hugging Face's engine (RE2's ``\\s``
is ASCII only). The merges are keras-hub's ``BytePairTokenizer``'s
(:func:`samtone_tf.internals.bpe_merge`).

Not handled: special tokens written inside a text ("<|endoftext|>" typed by a user), which
Hugging Face keeps whole; here they are split like any text. A text holding U+FFFF (a
noncharacter) is cut there.
"""

from __future__ import annotations

import tensorflow as tf

from samtone_tf.internals import bpe_merge
from samtone_tf.tokenizers.in_graph import check_room, surround
from samtone_tf.tokenizers.text_ops import tensorflow_text

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}"
                 r"\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_WS = r"\t\n\x{0B}\f\r\x{85}\p{Z}"  # Unicode White_Space
_HS = r"\t\x{0B}\f\x{85}\p{Z}"  # ... without \r and \n
_MARK = "\uffff"
_CUT = rf"([{_HS}]+)([{_HS}])([^{_WS}])"
_PIECES = (rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}|"
           rf" ?[^{_WS}\p{{L}}\p{{N}}]+[\r\n]*|[{_WS}]*[\r\n]+|[{_WS}]+")


def qwen2_split(texts):
    """[N] strings → ragged [N, None] pieces, as Qwen's pre-tokenizer splits (above)."""
    tf_text = tensorflow_text()

    texts = tf.convert_to_tensor(texts, tf.string)
    marked = tf.strings.regex_replace(texts, _CUT, "\\1" + _MARK + "\\2\\3")
    parts = tf.strings.split(marked, sep=_MARK)
    pieces = tf_text.regex_split(parts.flat_values, _PIECES, _PIECES)
    pieces = tf.RaggedTensor.from_row_splits(
        pieces.flat_values, tf.gather(pieces.row_splits, parts.row_splits))
    return tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)


class ByteLevelBPETokenizer:
    """Qwen's byte-level BPE with the specials of a ``tokenizer.json`` template.

    Args:
        vocabulary: token → id (the ``model.vocab`` of ``tokenizer.json``).
        merges: "a b" rules by rank.
        prefix, suffix: special token ids around every text (e.g. Qwen3-Embedding's
            trailing ``<|endoftext|>``).
        pad_id: the id padded positions get (masked out).
    """

    def __init__(self, vocabulary, merges, prefix=(), suffix=(), pad_id=0,
                 max_length: int = 512, pad_to_max_length: bool = False):
        import keras_hub

        tensorflow_text()
        self.vocabulary, self.merges = dict(vocabulary), list(merges)
        self.prefix, self.suffix = [int(i) for i in prefix], [int(i) for i in suffix]
        check_room(max_length, self.prefix, self.suffix)
        self.pad_id = int(pad_id)
        self.max_length = max_length
        self.pad_to_max_length = pad_to_max_length
        self._tokenizer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=self.vocabulary, merges=self.merges, unsplittable_tokens=[],
            dtype="int32")
        self.vocab_size = max(self.vocabulary.values()) + 1

    def tokenize(self, texts):
        """[N] strings → ragged [N, None] int64 ids (no specials)."""
        tf_text = tensorflow_text()

        texts = tf_text.normalize_utf8(tf.convert_to_tensor(texts, tf.string), "NFC")
        words = qwen2_split(texts)
        ids = bpe_merge(self._tokenizer, words.flat_values)
        ids = tf.RaggedTensor.from_row_splits(
            tf.cast(ids.flat_values, tf.int64), tf.gather(ids.row_splits, words.row_splits))
        return ids.with_row_splits_dtype(tf.int64)

    def __call__(self, texts):
        return surround(self.tokenize(texts), self.prefix, self.suffix, self.max_length,
                        self.pad_to_max_length, self.pad_id)
