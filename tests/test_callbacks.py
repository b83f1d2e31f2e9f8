"""TowerAlignment (samtone_tf.training.callbacks): its numbers equal an independent
scikit-learn / NumPy computation; in a job they reach history.json and TensorBoard."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.training.callbacks import METRICS, TowerAlignment, alignment_metrics


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("shift", [0.0, 0.3, 3.0])
def test_alignment_numbers_equal_sklearn_and_numpy(shift):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(7)
    direction = _unit(rng.normal(size=(1, 16)))
    q = _unit(rng.normal(size=(60, 16)) + shift * direction)
    d = _unit(rng.normal(size=(60, 16)) - shift * direction)
    got = alignment_metrics(q, d, seed=3)
    x, y = np.vstack([q, d]), np.r_[np.zeros(60), np.ones(60)]
    probe = cross_val_score(LogisticRegression(max_iter=2000), x, y,
                            cv=StratifiedKFold(5, shuffle=True, random_state=3)).mean()
    qm, dm = q.mean(0), d.mean(0)
    sims_qd, sims_qq = q @ d.T, q @ q.T
    off = ~np.eye(60, dtype=bool)
    want = {"tower_probe_accuracy": probe,
            "tower_centroid_cosine": qm @ dm / np.linalg.norm(qm) / np.linalg.norm(dm),
            "top1_similarity": sims_qd.max(axis=1).mean(),
            "mean_query_query": sims_qq[off].mean(), "mean_query_document": sims_qd[off].mean()}
    for name in METRICS:
        assert got[name] == pytest.approx(want[name], abs=1e-9), name
    if shift == 3.0:  # two clouds: separable, centroids opposed
        assert got["tower_probe_accuracy"] == 1.0 and got["tower_centroid_cosine"] < -0.9
    if shift == 0.0:  # one cloud
        assert got["tower_probe_accuracy"] < 0.75


def test_arguments_are_checked():
    pairs = [("q", "d")] * 12
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="every_n_steps"):
            TowerAlignment(pairs, every_n_steps=bad)
    with pytest.raises(ValueError, match="at least 10"):
        TowerAlignment(pairs[:3])


def _scalars(folder):
    tags = {}
    for path in glob.glob(os.path.join(folder, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                tags.setdefault(value.tag, []).append(
                    (event.step, float(array) if array.dtype.kind == "f" else array))
    return tags


def test_job_records_alignment_in_history_and_tensorboard(tmp_path, small_scifact):
    from samtone_tf.runs.config import load_config
    from samtone_tf.runs.job import run_training

    # the 150-document SciFact copy: the job's evaluation of the shipped 5,183
    # documents took half of this test's time and checks nothing about alignment
    config = load_config(overrides={
        "data.path": small_scifact,
        "model.tower": "small", "training.steps": 5, "training.global_batch_size": 8,
        "training.checkpoint_every": 2, "evaluation.zero_shot": False,
        "analysis.every_steps": 2, "analysis.pairs": 30, "analysis.tsne": True})
    run_training(config, str(tmp_path / "run"), verbose=0, log=lambda *a: None)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["alignment_step"] == [0, 2, 4, 5]
    for name in METRICS:
        assert len(history[name]) == 4 and np.isfinite(history[name]).all(), name
    assert 0.0 <= min(history["tower_probe_accuracy"]) <= max(history["tower_probe_accuracy"]) <= 1
    scalars = _scalars(str(tmp_path / "run" / "logs" / "alignment"))
    for name in METRICS:
        steps = [step for step, _ in scalars[f"alignment/{name}"]]
        values = [value for _, value in scalars[f"alignment/{name}"]]
        assert steps == [0, 2, 4, 5]
        np.testing.assert_allclose(values, history[name], rtol=1e-6)
    assert [step for step, _ in scalars["alignment/tsne"]] == [0, 2, 4, 5]  # the images
