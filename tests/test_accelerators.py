"""Mixed precision, XLA and padding (samtone_tf.tokenizers.padding): each checked against the
plain float32 / dynamically padded / non-compiled path on the same data."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from samtone_tf import DualEncoder, SamToNeLoss
from samtone_tf.models import HFBert, minilm_path
from samtone_tf.runs.config import load_config
from samtone_tf.errors import ConfigError
from samtone_tf.tokenizers.padding import bucket_widths
from tests.helpers.builders import tiny_spec

SPEC = tiny_spec(vocab_size=300, num_layers=2, max_length=64)


def _scifact_examples(n):
    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.pipeline import examples_from_qrels
    from samtone_tf.resources import scifact_path

    return examples_from_qrels(load_beir(scifact_path(), "train"))[:n]


def _dataset(model, examples, padding, batch=8):
    from samtone_tf.data.pipeline import training_dataset

    return training_dataset(examples, model.query_tokenizer(), model.document_tokenizer(),
                            batch, seed=0, padding=padding)


def _loss(model, batch):
    return float(model.compute_loss(x=batch, y_pred=model(batch, training=False)))


def test_padding_does_not_change_the_loss_and_bounds_the_shapes():
    """The loss on bucketed / max_length batches equals the loss on dynamically padded
    batches of the same examples; bucketed widths come from the few bucket widths."""
    keras.utils.set_random_seed(0)
    model = DualEncoder(SPEC, query_max_length=32, document_max_length=64)
    model.compile(loss=SamToNeLoss(0.05, same_tower="both", symmetric=True))
    examples = _scifact_examples(48)
    losses, widths = {}, {}
    for padding in ("dynamic", "buckets", "max_length"):
        batches = list(_dataset(model, examples, padding))
        losses[padding] = [_loss(model, b) for b in batches]
        widths[padding] = {(int(b["query"]["token_ids"].shape[1]),
                            int(b["document"]["token_ids"].shape[1])) for b in batches}
    np.testing.assert_allclose(losses["buckets"], losses["dynamic"], rtol=1e-5)
    np.testing.assert_allclose(losses["max_length"], losses["dynamic"], rtol=1e-5)
    assert widths["max_length"] == {(32, 64)}
    assert {q for q, _ in widths["buckets"]} <= set(bucket_widths(32))
    assert {d for _, d in widths["buckets"]} <= set(bucket_widths(64))
    assert len(widths["dynamic"]) > len(widths["buckets"])  # the point of buckets


def test_padding_does_not_change_encodings():
    texts = [e.document for e in _scifact_examples(20)]
    out = {}
    for padding in ("dynamic", "buckets", "max_length"):
        keras.utils.set_random_seed(1)
        model = DualEncoder(SPEC, document_max_length=64, padding=padding,
                            encode_jit_compile=False)
        out[padding] = model.encode_documents(texts, batch_size=6)
    np.testing.assert_allclose(out["buckets"], out["dynamic"], atol=1e-5)
    np.testing.assert_allclose(out["max_length"], out["dynamic"], atol=1e-5)


def test_encoding_widths_exact_or_multiples_of_16():
    """encode_sorted pads each length-sorted batch to its longest row (multiple=1) or
    rounds up to a multiple of 16 (what ``encode_queries`` / ``encode_documents`` use,
    with or without XLA), with the same embeddings."""
    from samtone_tf.models.encoding import encode_sorted

    lengths = np.array([5, 33, 17, 40, 2, 18])
    mask = (np.arange(48)[None, :] < lengths[:, None]).astype("int32")
    tokens = {"token_ids": mask * 7, "padding_mask": mask}
    widths = {}
    for multiple in (1, 16):
        seen = widths[multiple] = []

        def function(chunk, seen=seen):
            seen.append(chunk["token_ids"].shape[1])
            return tf.cast(tf.reduce_sum(chunk["padding_mask"], 1, keepdims=True), tf.float32)

        out = encode_sorted(function, tokens, 2, 1, multiple=multiple)
        np.testing.assert_array_equal(out[:, 0], lengths)  # each row back in its place
    assert widths[1] == [40, 18, 5]  # sorted: (40, 33), (18, 17), (5, 2)
    assert widths[16] == [48, 32, 16]


def test_model_encoding_rounds_dynamic_widths_to_16_with_exact_embeddings():
    """``encode_queries`` (no XLA, dynamic padding) feeds its traced function widths
    that are multiples of 16 or the max length (few oneDNN kernel shapes), and returns
    the embeddings of the same batches at their exact widths."""
    from samtone_tf.models.encoding import encode_sorted, resolve_encode_jit

    keras.utils.set_random_seed(3)
    model = DualEncoder(SPEC, query_max_length=60, encode_jit_compile=False)
    texts = [e.query for e in _scifact_examples(24)]  # claims: 5-40 tokens
    out = model.encode_queries(texts, batch_size=4)
    function = model._encode_functions["query"]
    assert resolve_encode_jit(model.encode_jit_compile, model.distribute_strategy) is False
    widths = []

    def spy(chunk):
        widths.append(int(chunk["token_ids"].shape[1]))
        return function(chunk)

    model._encode_functions["query"] = spy
    np.testing.assert_array_equal(model.encode_queries(texts, batch_size=4), out)
    assert widths and all(w % 16 == 0 or w == 60 for w in widths), widths
    tokens = {k: v.numpy() for k, v in model.query_tokenizer()(tf.constant(texts)).items()}
    exact = encode_sorted(function, tokens, 4, model.query_tower.output_dim,
                          max_length=60, multiple=1)
    np.testing.assert_allclose(out, exact, atol=1e-5)


def test_jit_encoding_equals_plain_encoding():
    keras.utils.set_random_seed(2)
    model = DualEncoder(SPEC, encode_jit_compile=False)
    texts = [e.query for e in _scifact_examples(12)]
    plain = model.encode_queries(texts)
    model.encode_jit_compile, model._encode_functions = True, {}
    np.testing.assert_allclose(model.encode_queries(texts), plain, atol=1e-5)


def _policy_model(dtype, spec=SPEC, **kwargs):
    keras.utils.set_random_seed(3)
    return DualEncoder(spec, dtype=dtype, **kwargs)


def _copy_weights(source, target):
    for s, t in zip(source.weights, target.weights):
        t.assign(np.asarray(s))


def test_mixed_bfloat16_loss_within_one_percent_of_float32_and_trains():
    """MiniLM (pretrained, so the loss means something) on a fixed SciFact batch; the
    small tower when MiniLM is not installed."""
    spec = HFBert("minilm") if minilm_path() else SPEC
    lengths = dict(query_max_length=32, document_max_length=64)
    reference = DualEncoder(spec, **lengths)
    mixed = DualEncoder(spec, dtype="mixed_bfloat16", **lengths)
    _copy_weights(reference, mixed)
    assert mixed.query_tower.encoder.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in mixed.trainable_variables)
    loss = SamToNeLoss(0.05, same_tower="query")
    for m in (reference, mixed):
        m.compile(keras.optimizers.Adam(1e-5), loss=loss)
    batch = next(iter(_dataset(reference, _scifact_examples(40), "dynamic", batch=16)))
    want, got = _loss(reference, batch), _loss(mixed, batch)
    assert abs(got - want) <= 0.01 * abs(want), (got, want)
    history = mixed.fit(tf.data.Dataset.from_tensors(batch).repeat(2), verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert mixed.predict_on_batch(batch)["query_embeddings"].dtype == np.float32


@pytest.mark.parametrize("chunk", [None, 4])
def test_mixed_float16_scales_the_loss_and_trains(chunk):
    model = _policy_model("mixed_float16")
    model.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05),
                  gradient_cache_chunk_size=chunk)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    data = _dataset(model, _scifact_examples(32), "buckets").take(3).repeat(3)
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(data, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # the first steps overflow float16 at the initial scale 2^15 and are skipped while
    # the scale halves; then updates apply
    assert float(model.optimizer.dynamic_scale) < 2.0 ** 15
    assert 0 < int(model.optimizer.iterations.numpy()) < 9
    assert any(not np.allclose(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights))


def test_bfloat16_export_serves_float32_embeddings_equal_to_the_model(tmp_path):
    from samtone_tf.export.saved_model import export_saved_model

    model = _policy_model("mixed_bfloat16", encode_jit_compile=False)
    model.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05))
    model.fit(_dataset(model, _scifact_examples(40), "dynamic").take(2), verbose=0)
    export_saved_model(model, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    texts = [e.query for e in _scifact_examples(6)]
    served = loaded.signatures["encode_query"](texts=tf.constant(texts))["embeddings"]
    assert served.dtype == tf.float32
    np.testing.assert_allclose(served.numpy(), model.encode_queries(texts), atol=1e-5)


def test_job_options_reach_the_model():
    from samtone_tf.training.distribute import get_strategy
    from samtone_tf.runs.job import build_model

    config = load_config(overrides={
        "model.tower": "small", "training.mixed_precision": "mixed_bfloat16",
        "training.jit_compile": True, "training.steps_per_execution": 2,
        "data.padding": "buckets"})
    model = build_model(config, get_strategy("default"), log=lambda *a: None)
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model.query_tower.encoder.compute_dtype == "bfloat16"
    assert model.jit_compile is True and model.encode_jit_compile is True
    assert model.steps_per_execution == 2 and model.padding == "buckets"
    plain = build_model(load_config(overrides={"model.tower": "small"}),
                        get_strategy("default"), log=lambda *a: None)
    assert plain.dtype_policy.name == "float32" and plain.padding == "dynamic"
    assert plain.jit_compile is False  # Keras' auto: off on a CPU-only machine


@pytest.mark.parametrize("key,value,needle", [
    ("training.mixed_precision", "float16", "training.mixed_precision"),
    ("training.jit_compile", "yes", "training.jit_compile"),
    ("training.jit_compile", 1, "training.jit_compile"),
    ("training.steps_per_execution", 0, "training.steps_per_execution"),
    ("data.padding", "static", "data.padding"),
])
def test_bad_accelerator_options_name_the_field(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(overrides={key: value})


def test_steps_per_execution_history_averages_the_steps_it_covers(tmp_path):
    """fit_resumable with steps_per_execution=2: one history row per execution, equal
    to the mean of the per-step rows of the same run with steps_per_execution=1."""
    from samtone_tf.training.resumable import fit_resumable

    histories = {}
    for spe in (1, 2):
        keras.utils.set_random_seed(5)
        model = DualEncoder(SPEC)
        model.compile(keras.optimizers.Adam(1e-3), loss=SamToNeLoss(0.05),
                      steps_per_execution=spe)
        data = _dataset(model, _scifact_examples(64), "dynamic")
        histories[spe] = fit_resumable(model, data, 6, str(tmp_path / f"c{spe}"),
                                       checkpoint_every=3, verbose=0)
    assert histories[2]["step"] == [2, 4, 6]
    pairs = np.asarray(histories[1]["loss"]).reshape(3, 2).mean(axis=1)
    np.testing.assert_allclose(histories[2]["loss"], pairs, rtol=1e-5)
    saved = sorted(int(p.split("-")[-1].split(".")[0])
                   for p in tf.io.gfile.glob(str(tmp_path / "c2" / "ckpt-*.index")))
    assert saved == [4, 6]  # the executions that crossed a multiple of 3, and the end
