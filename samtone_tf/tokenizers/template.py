"""A SentencePiece model with the special tokens a Hugging Face ``tokenizer.json`` adds.

Gemma's tokenizers keep their SentencePiece model (``tokenizer.model``, BPE with byte
fallback, no normalisation) and add special tokens through the ``tokenizer.json``
post-processor's template (EmbeddingGemma: ``<bos> text <eos>``). :func:`read_template`
reads that template's single-sequence form; :class:`TemplateSentencePieceTokenizer`
applies it in the graph: ``prefix pieces suffix``, truncated to ``max_length`` with the
specials kept, padded with the pad id. The pieces come from
``tensorflow_text.SentencepieceTokenizer``, equal to Hugging Face's ids on 4,300 lines of
a byte-fallback BPE model (tests/test_families.py).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from samtone_tf.errors import DataError
from samtone_tf.tokenizers.in_graph import check_room, surround
from samtone_tf.tokenizers.text_ops import tensorflow_text


def read_template(folder):
    """(prefix ids, suffix ids) of the single-sequence template in ``folder``'s
    ``tokenizer.json`` (``TemplateProcessing``, or none: no specials)."""
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(path):
        raise DataError(f"{folder}: no tokenizer.json (its post-processor says which "
                        "special tokens surround a text)")
    with open(path, encoding="utf-8") as handle:
        processor = json.load(handle).get("post_processor")
    if processor is None:
        return [], []
    if processor.get("type") == "Sequence":
        kinds = [p for p in processor.get("processors", []) if p.get("type") != "ByteLevel"]
        processor = kinds[0] if len(kinds) == 1 else {"type": "Sequence"}
    if processor.get("type") != "TemplateProcessing":
        raise DataError(f"{path}: post_processor {processor.get('type')!r} is not supported "
                        "(expected TemplateProcessing)")
    specials = processor.get("special_tokens", {})
    prefix, suffix, seen = [], [], False
    for item in processor["single"]:
        if "Sequence" in item:
            seen = True
            continue
        name = item["SpecialToken"]["id"]
        try:
            ids = specials[name]["ids"]
        except KeyError as error:
            raise DataError(f"{path}: template token {name!r} has no ids") from error
        (suffix if seen else prefix).extend(int(i) for i in ids)
    return prefix, suffix


class TemplateSentencePieceTokenizer:
    """``prefix pieces suffix`` with a SentencePiece model's ids (see the module).

    Args:
        model: path to the SentencePiece ``.model`` file, or its bytes.
        prefix, suffix: special token ids around every text.
        pad_id: the id padded positions get (they are masked out).
    """

    def __init__(self, model, prefix=(), suffix=(), pad_id=0, max_length: int = 512,
                 pad_to_max_length: bool = False):
        tf_text = tensorflow_text()

        if isinstance(model, str):
            with open(model, "rb") as handle:
                model = handle.read()
        self.prefix, self.suffix = [int(i) for i in prefix], [int(i) for i in suffix]
        check_room(max_length, self.prefix, self.suffix)
        self.model = model
        self.pad_id = int(pad_id)
        self.max_length = max_length
        self.pad_to_max_length = pad_to_max_length
        self._tokenizer = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)
        self.vocab_size = int(self._tokenizer.vocab_size())

    def tokenize(self, texts):
        """[N] strings → ragged [N, None] int64 piece ids (no specials)."""
        pieces = self._tokenizer.tokenize(tf.convert_to_tensor(texts, tf.string))
        return tf.cast(pieces, tf.int64).with_row_splits_dtype(tf.int64)

    def __call__(self, texts):
        return surround(self.tokenize(texts), self.prefix, self.suffix, self.max_length,
                        self.pad_to_max_length, self.pad_id)
