"""SamToNeLoss against an independent NumPy float64 reference.

The reference builds, row by row, the explicit list of (anchor, candidate) pairs
that the paper's formulas put in each denominator, then computes the loss and its
analytic gradient pair by pair. It shares no code or masking logic with the
TensorFlow implementation, which works on whole score matrices.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.losses.samtone import SamToNeLoss

VARIANTS = [  # (same_tower, symmetric, joint)
    ("none", False, False),
    ("query", False, False),
    ("none", True, False),
    ("query", True, False),
    ("both", True, False),
    ("none", False, True),
    ("query", False, True),
    ("both", False, True),
]


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def reference_loss(q, d, h=None, qid=None, did=None, hid=None, tau=0.01,
                   same_tower="query", symmetric=False, joint=False):
    """Returns (loss, dq, dd, dh, dlog_tau) in float64."""
    B = q.shape[0]
    vec = {"q": q, "d": d}
    if h is not None:
        vec["h"] = h.reshape(-1, h.shape[-1])
        hid = None if hid is None else np.asarray(hid).reshape(-1)
    grads = {k: np.zeros_like(v) for k, v in vec.items()}

    def same(ids, a, b):
        return ids is not None and ids[a] == ids[b]

    total, dlogtau = 0.0, 0.0
    for i in range(B):
        docs = [("d", j) for j in range(B) if j == i or not same(did, i, j)]
        hards = []
        if h is not None:
            hards = [("h", m) for m in range(len(vec["h"]))
                     if not (did is not None and hid is not None and hid[m] == did[i])]
        other_q = [("q", j) for j in range(B) if j != i and not same(qid, i, j)]
        other_d = [("d", j) for j in range(B) if j != i and not same(did, i, j)]
        terms = []  # (anchor, positive, candidates)
        if joint:
            cands = [("q", c) for c in docs + hards]
            cands += [("d", c) for c in other_q]  # s(q_j, d_i), j != i
            if same_tower in ("query", "both"):
                cands += [("q", c) for c in other_q]
            if same_tower == "both":
                cands += [("d", c) for c in other_d]
            terms.append((("q", i), ("d", i), cands))
        else:
            cands = [("q", c) for c in docs + hards]
            if same_tower in ("query", "both"):
                cands += [("q", c) for c in other_q]
            terms.append((("q", i), ("d", i), cands))
            if symmetric:
                cands = [("d", c) for c in [("q", i)] + other_q]
                if same_tower == "both":
                    cands += [("d", c) for c in other_d]
                terms.append((("d", i), ("q", i), cands))
        for anchor, pos, cands in terms:
            # cands hold (anchor kind, (candidate kind, index)); the anchor row is i
            pairs = [((a, i), cand) for a, cand in cands]
            logits = np.array([vec[a][ai] @ vec[c][ci] / tau for (a, ai), (c, ci) in pairs])
            pos_logit = vec[anchor[0]][anchor[1]] @ vec[pos[0]][pos[1]] / tau
            m = logits.max()
            lse = m + np.log(np.exp(logits - m).sum())
            total += lse - pos_logit
            p = np.exp(logits - lse)
            weights = [(w, pr) for w, pr in zip(p, pairs)] + [(-1.0, (anchor, pos))]
            for w, ((a, ai), (c, ci)) in weights:
                grads[a][ai] += w * vec[c][ci] / tau / B
                grads[c][ci] += w * vec[a][ai] / tau / B
            dlogtau += (-(p * logits).sum() + pos_logit) / B
    dh = None if h is None else grads["h"].reshape(h.shape)
    return total / B, grads["q"], grads["d"], dh, dlogtau


def _inputs(seed, B=6, D=8, K=2, with_hard=True, with_ids=True):
    rng = np.random.default_rng(seed)
    q = _unit(rng.normal(size=(B, D)))
    d = _unit(q + 0.7 * rng.normal(size=(B, D)))
    h = _unit(rng.normal(size=(B, K, D))) if with_hard else None
    ids = {}
    if with_ids:
        ids["query_ids"] = np.array([0, 1, 1, 2, 3, 0][:B])
        ids["document_ids"] = np.array([10, 11, 12, 10, 13, 14][:B])
        if with_hard:
            hid = 100 + np.arange(B * K).reshape(B, K)
            hid[0, 1] = 11  # row 1's positive mined as a hard negative of row 0
            hid[3, 0] = 14
            ids["hard_negative_ids"] = hid
    return q, d, h, ids


def _relerr(a, b):
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / max(np.linalg.norm(np.ravel(b)), 1e-30))


def _tf_loss_and_grads(loss, q, d, h, ids, dtype):
    tq = tf.constant(q, dtype)
    td = tf.constant(d, dtype)
    th = None if h is None else tf.constant(h, dtype)
    watched = [tq, td] + ([th] if th is not None else [])
    with tf.GradientTape() as tape:
        tape.watch(watched)
        value = loss(tq, td, hard_negative_embeddings=th, **ids)
    var = [loss.log_temperature] if loss.trainable_temperature else []
    grads = tape.gradient(value, watched + var)
    return value.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize(
    "variant,with_hard,with_ids,trainable",
    list(itertools.product(VARIANTS, [False, True], [False, True], [False, True])),
)
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
def test_loss_and_gradient_match_numpy_reference(variant, with_hard, with_ids, trainable, dtype):
    same_tower, symmetric, joint = variant
    tau = 0.01 if not trainable else 0.03
    q, d, h, ids = _inputs(seed=VARIANTS.index(variant), with_hard=with_hard, with_ids=with_ids)
    loss = SamToNeLoss(temperature=tau, trainable_temperature=trainable,
                       same_tower=same_tower, symmetric=symmetric, joint=joint)
    value, grads = _tf_loss_and_grads(loss, q, d, h, ids, dtype)
    if trainable:  # the float32 variable holds log τ rounded to float32
        tau = float(np.exp(np.float64(loss.log_temperature.numpy())))
    ref = reference_loss(q, d, h, ids.get("query_ids"), ids.get("document_ids"),
                         ids.get("hard_negative_ids"), tau, same_tower, symmetric, joint)
    tol = 1e-9 if dtype == tf.float64 else 1e-5
    assert _relerr(value, ref[0]) < tol
    assert _relerr(grads[0], ref[1]) < tol
    assert _relerr(grads[1], ref[2]) < tol
    if with_hard:
        assert _relerr(grads[2], ref[3]) < tol
    if trainable:
        assert _relerr(grads[-1], ref[4]) < max(tol, 1e-6)


def test_reference_gradient_matches_finite_differences():
    """Guards the reference itself: its analytic gradient equals central differences."""
    q, d, h, ids = _inputs(seed=3)
    kwargs = dict(qid=ids["query_ids"], did=ids["document_ids"], hid=ids["hard_negative_ids"],
                  tau=0.2, same_tower="both", symmetric=False, joint=True)
    _, gq, _, gh, gt = reference_loss(q, d, h, **kwargs)
    eps = 1e-6
    for arr, grad in ((q, gq), (h, gh)):
        flat = arr.reshape(-1)
        for k in (0, 5, flat.size - 1):
            old = flat[k]
            flat[k] = old + eps
            up = reference_loss(q, d, h, **kwargs)[0]
            flat[k] = old - eps
            down = reference_loss(q, d, h, **kwargs)[0]
            flat[k] = old
            assert abs((up - down) / (2 * eps) - grad.reshape(-1)[k]) < 1e-6
    up = reference_loss(q, d, h, **{**kwargs, "tau": 0.2 * np.exp(eps)})[0]
    down = reference_loss(q, d, h, **{**kwargs, "tau": 0.2 * np.exp(-eps)})[0]
    assert abs((up - down) / (2 * eps) - gt) < 1e-6


def test_string_ids_mask_like_integer_ids():
    q, d, h, ids = _inputs(seed=5)
    loss = SamToNeLoss(temperature=0.05, same_tower="query", symmetric=True)
    as_int = loss(q, d, h, query_ids=ids["query_ids"], document_ids=ids["document_ids"])
    as_str = loss(q, d, h, query_ids=[f"q{i}" for i in ids["query_ids"]],
                  document_ids=[f"doc{i}" for i in ids["document_ids"]])
    ref = reference_loss(q, d, h, ids["query_ids"], ids["document_ids"], None, 0.05,
                         "query", True, False)[0]
    assert _relerr(as_str.numpy(), ref) < 1e-5
    assert _relerr(as_int.numpy(), ref) < 1e-5


def test_samtone_differs_from_standard_and_is_larger():
    q, d, h, _ = _inputs(seed=7, with_ids=False)
    standard = SamToNeLoss(0.05, same_tower="none")(q, d).numpy()
    samtone = SamToNeLoss(0.05, same_tower="query")(q, d).numpy()
    assert samtone > standard  # more terms in every denominator


def test_bf16_embeddings_give_finite_loss_close_to_float32():
    rng = np.random.default_rng(11)
    q = _unit(rng.normal(size=(32, 64)))
    d = _unit(q + 0.5 * rng.normal(size=(32, 64)))
    h = _unit(rng.normal(size=(32, 2, 64)))
    for variant in VARIANTS:
        loss = SamToNeLoss(0.01, same_tower=variant[0], symmetric=variant[1], joint=variant[2])
        full = loss(tf.constant(q, tf.float32), tf.constant(d, tf.float32),
                    tf.constant(h, tf.float32))
        half = loss(tf.constant(q, tf.bfloat16), tf.constant(d, tf.bfloat16),
                    tf.constant(h, tf.bfloat16))
        assert half.dtype == tf.float32
        assert np.isfinite(half.numpy())
        assert abs(half.numpy() - full.numpy()) <= 1e-2 * abs(full.numpy()), variant


def test_metrics_rank_the_positive_among_documents():
    rng = np.random.default_rng(2)
    q = _unit(rng.normal(size=(5, 16)))
    d = q.copy()
    d[[1, 2]] = d[[2, 1]]  # rows 1 and 2 get each other's positive
    loss = SamToNeLoss(0.05, same_tower="query")
    loss(q, d)
    scores = q @ d.T
    ranks = 1 + (scores > np.diag(scores)[:, None]).sum(1)
    assert loss.accuracy_tracker.result().numpy() == pytest.approx(np.mean(ranks == 1))
    assert loss.mrr_tracker.result().numpy() == pytest.approx(np.mean(1 / ranks), rel=1e-6)


def test_trainable_temperature_is_clipped():
    loss = SamToNeLoss(0.01, trainable_temperature=True)
    assert loss.log_temperature.trainable
    loss.log_temperature.assign(np.log(1e-4))
    assert loss.temperature.numpy() == pytest.approx(0.005)
    loss.log_temperature.assign(np.log(50.0))
    assert loss.temperature.numpy() == pytest.approx(1.0)
    loss.log_temperature.assign(np.log(0.2))
    assert loss.temperature.numpy() == pytest.approx(0.2)
    assert not SamToNeLoss(0.01).log_temperature.trainable


@pytest.mark.parametrize("kwargs,match", [
    (dict(same_tower="both"), "symmetric=True or joint=True"),
    (dict(same_tower="docs"), "same_tower must be one of"),
    (dict(symmetric=True, joint=True), "exclusive"),
    (dict(temperature=0.0), "temperature must be in"),
])
def test_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamToNeLoss(**kwargs)


def test_shape_errors_print_shapes():
    loss = SamToNeLoss()
    q = np.zeros((4, 8), "float32")
    with pytest.raises(ValueError, match=r"\(4, 8\) and document_embeddings \(4, 8, 1\)"):
        loss(q, np.zeros((4, 8, 1), "float32"))
    with pytest.raises(ValueError, match=r"got \(4, 8\) and \(3, 8\)"):
        loss(q, np.zeros((3, 8), "float32"))
    with pytest.raises(ValueError, match=r"hard_negative_embeddings .* got \(4, 8\)"):
        loss(q, q, hard_negative_embeddings=q)
    with pytest.raises(ValueError, match=r"document_ids must be \[batch\].* got \(5,\)"):
        loss(q, q, document_ids=np.arange(5))


def test_matryoshka_loss_is_the_sum_over_renormalised_prefixes():
    """Σ_m of the NumPy float64 reference on q[:, :m] / ‖·‖, d[:, :m] / ‖·‖."""
    rng = np.random.default_rng(11)
    q, d = _unit(rng.normal(size=(6, 16))), _unit(rng.normal(size=(6, 16)))
    dims = [16, 8, 4]
    loss = SamToNeLoss(0.05, same_tower="both", symmetric=True, matryoshka_dims=dims)
    want = sum(reference_loss(_unit(q[:, :m]), _unit(d[:, :m]), tau=0.05, same_tower="both",
                              symmetric=True)[0] for m in dims)
    assert float(loss(q, d)) == pytest.approx(want, rel=1e-5)
    config = loss.get_config()
    assert config["matryoshka_dims"] == dims
    assert SamToNeLoss.from_config(config).matryoshka_dims == dims
    with pytest.raises(ValueError, match="exceeds"):
        SamToNeLoss(matryoshka_dims=[32])(q, d)
    for bad in ([], [0], [8, 8], "64", [True]):
        with pytest.raises(ValueError, match="matryoshka_dims"):
            SamToNeLoss(matryoshka_dims=bad)


def test_binary_weight_adds_the_loss_on_sign_bits_with_a_straight_through_gradient():
    """L(q, d, h) + w · L(q, b(d), b(h)), b(x) = sign(x)/√D, against the NumPy reference;
    the gradient reaching d (and h) is the float term's plus w times the reference's
    gradient with respect to b(d) (the straight-through estimator)."""
    rng = np.random.default_rng(12)
    B, D, K, w = 6, 16, 2, 0.7
    q, d = _unit(rng.normal(size=(B, D))), _unit(rng.normal(size=(B, D)))
    h = _unit(rng.normal(size=(B, K, D)))
    b = lambda x: np.where(x > 0, 1.0, -1.0) / np.sqrt(D)  # noqa: E731
    kwargs = dict(tau=0.05, same_tower="both", symmetric=True)
    f_loss, f_dq, f_dd, f_dh, _ = reference_loss(q, d, h, **kwargs)
    b_loss, b_dq, b_dd, b_dh, _ = reference_loss(q, b(d), b(h), **kwargs)
    loss = SamToNeLoss(0.05, same_tower="both", symmetric=True, binary_weight=w)
    tensors = [tf.Variable(x) for x in (q, d, h)]
    with tf.GradientTape() as tape:
        value = loss(*tensors)
    dq, dd, dh = tape.gradient(value, tensors)
    assert float(value) == pytest.approx(f_loss + w * b_loss, rel=1e-10)
    np.testing.assert_allclose(dq.numpy(), f_dq + w * b_dq, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dd.numpy(), f_dd + w * b_dd, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dh.numpy(), (f_dh + w * b_dh).reshape(B, K, D),
                               rtol=1e-8, atol=1e-12)
    assert SamToNeLoss.from_config(loss.get_config()).binary_weight == w
    assert float(SamToNeLoss(0.05, binary_weight=0.0)(q, d)) == pytest.approx(
        reference_loss(q, d, tau=0.05)[0], rel=1e-10)
    for bad in (-0.1, float("inf"), "1", True):
        with pytest.raises(ValueError, match="binary_weight"):
            SamToNeLoss(binary_weight=bad)
