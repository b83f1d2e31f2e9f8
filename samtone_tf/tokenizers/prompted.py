"""Instruction prefixes ("query: ", "passage: ") applied inside the graph.

Embedders such as E5 are trained and served with a prefix before every query and every
document. :func:`with_prompt` puts it in front of the texts inside the tokenizer, so it
is part of the training input, of ``encode_queries`` / ``encode_documents``, and of the
exported SavedModel: a client sends the raw text.
"""

from __future__ import annotations

import tensorflow as tf


class PromptedTokenizer:
    """``tokenizer`` applied to ``prompt + text``; every other attribute is the
    tokenizer's own (``max_length``, its tracked resources, ...).

    >>> from samtone_tf.tokenizers.in_graph import HashingTokenizer
    >>> tokenizer = HashingTokenizer(vocab_size=1000, max_length=8)
    >>> prompted = PromptedTokenizer(tokenizer, "query: ")
    >>> same = tokenizer(tf.constant(["query: hi"]))["token_ids"]
    >>> bool(tf.reduce_all(prompted(tf.constant(["hi"]))["token_ids"] == same))
    True
    """

    def __init__(self, tokenizer, prompt):
        self.tokenizer = tokenizer
        self.prompt = prompt

    def __call__(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        return self.tokenizer(tf.strings.join([self.prompt, texts]))

    def __getattr__(self, name):
        if name in ("tokenizer", "prompt"):  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.tokenizer, name)


def with_prompt(tokenizer, prompt):
    """``tokenizer`` itself when ``prompt`` is empty, else a :class:`PromptedTokenizer`."""
    return PromptedTokenizer(tokenizer, prompt) if prompt else tokenizer


def check_prompt(name, prompt):
    if not isinstance(prompt, str):
        raise ValueError(f"{name} must be a string, got {prompt!r}")
