"""In-graph tokenizers (strings → ``{"token_ids", "padding_mask"}`` int32, inside a
``tf.function`` and an exported SavedModel) and the padding policies of token batches."""

from samtone_tf.tokenizers.byte_level import ByteLevelBPETokenizer
from samtone_tf.tokenizers.fairseq import FairseqSentencePieceTokenizer
from samtone_tf.tokenizers.in_graph import (HashingTokenizer, SentencePieceTokenizer,
                                            WordPieceTokenizer)
from samtone_tf.tokenizers.padding import PADDING_OPTIONS, check_padding, pad_tokens
from samtone_tf.tokenizers.template import TemplateSentencePieceTokenizer, read_template

__all__ = ["ByteLevelBPETokenizer", "FairseqSentencePieceTokenizer", "HashingTokenizer", "PADDING_OPTIONS",
           "SentencePieceTokenizer", "TemplateSentencePieceTokenizer", "WordPieceTokenizer",
           "check_padding", "pad_tokens", "read_template"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # samtone_tf's Keras classes, if Keras was first imported from here
