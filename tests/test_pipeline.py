"""Training pipeline: no-duplicate global batches, tokenized int tensors for fit."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from samtone_tf.data.beir import load_beir
from samtone_tf.data.pipeline import (Example, examples_from_qrels, no_duplicate_batches,
                                      training_dataset)
from samtone_tf.resources import scifact_path
from samtone_tf.tokenizers.in_graph import HashingTokenizer


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=200),
       batch_size=st.integers(1, 12), seed=st.integers(0, 10**6))
def test_no_batch_repeats_a_query_or_a_document(pairs, batch_size, seed):
    examples = [Example(f"q{q}", f"d{d}", "q", "d") for q, d in pairs]
    batches = no_duplicate_batches(examples, batch_size, seed)
    used = [i for batch in batches for i in batch]
    assert len(used) == len(set(used))  # each example at most once
    for batch in batches:
        assert len(batch) == batch_size
        assert len({examples[i].query_id for i in batch}) == batch_size
        assert len({examples[i].document_id for i in batch}) == batch_size


def test_scifact_batches_have_no_duplicates_and_keep_most_examples():
    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    assert len(examples) == 919
    for seed in range(20):
        batches = no_duplicate_batches(examples, 32, seed)
        for batch in batches:
            assert len({examples[i].query_id for i in batch}) == 32
            assert len({examples[i].document_id for i in batch}) == 32
        assert len(batches) == 919 // 32  # only the remainder is dropped


def test_training_dataset_yields_int_tensors_and_consistent_ids():
    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    tokenizer = HashingTokenizer(vocab_size=1000, max_length=16)
    dataset = training_dataset(examples, tokenizer, tokenizer, global_batch_size=8, seed=3,
                               epochs=2)
    batches = list(dataset)
    assert len(batches) == 2 * (919 // 8)
    for batch in batches[:5]:
        for side in ("query", "document"):
            assert batch[side]["token_ids"].dtype == tf.int32
            assert batch[side]["padding_mask"].dtype == tf.int32
            assert batch[side]["token_ids"].shape[0] == 8
        assert len(set(batch["query_ids"].numpy())) == 8
        assert len(set(batch["document_ids"].numpy())) == 8
    # same seed → same order; another seed → another order
    again = list(training_dataset(examples, tokenizer, tokenizer, 8, seed=3, epochs=2))
    np.testing.assert_array_equal(batches[0]["query_ids"], again[0]["query_ids"])
    other = list(training_dataset(examples, tokenizer, tokenizer, 8, seed=4))
    assert not np.array_equal(batches[0]["query_ids"], other[0]["query_ids"])


def test_training_dataset_runs_without_the_autotuner_also_as_the_job_slices_it():
    """Autotuning is off (with it, ``fit`` waited up to the autotuner's next wake-up
    after its last step: docs/RESULTS.md), on the dataset and on what
    fit_resumable and the speed benchmark make of it; the batches are the same ones."""
    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    tokenizer = HashingTokenizer(vocab_size=1000, max_length=16)
    dataset = training_dataset(examples, tokenizer, tokenizer, global_batch_size=8, seed=3)
    sliced = dataset.skip(2).take(3).cache()
    for data in (dataset, sliced):
        assert data.options().autotune.enabled is False
    tuned = dataset.with_options(tf.data.Options())  # options merge: still off
    assert tuned.options().autotune.enabled is False
    expected = list(dataset)[2:5]
    for got, want in zip(list(sliced), expected):
        np.testing.assert_array_equal(got["query"]["token_ids"], want["query"]["token_ids"])
        np.testing.assert_array_equal(got["document_ids"], want["document_ids"])
