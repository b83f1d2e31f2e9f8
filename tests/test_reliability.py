"""Preemption and numeric failures lose nothing."""

import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPER = [sys.executable, "-u", "-m", "tests.helpers.resumable_train"]


def _run(run_dir, *extra):
    return subprocess.run([*HELPER, str(run_dir), *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def _weights(run_dir):
    with np.load(os.path.join(run_dir, "final.npz")) as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_restart_equals_uninterrupted(tmp_path):
    reference = _run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]

    kill_at = random.randint(2, 22)
    process = subprocess.Popen([*HELPER, str(tmp_path / "killed")], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = 0
    for line in process.stdout:
        if line.startswith("STEP "):
            seen = int(line.split()[1])
            if seen >= kill_at:
                process.send_signal(signal.SIGKILL)
                break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"not killed (last step {seen})"
    assert not (tmp_path / "killed" / "final.npz").exists()

    resumed = _run(tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first_step = int([l for l in resumed.stdout.splitlines() if l.startswith("STEP")][0].split()[1])
    assert first_step == (seen // 4) * 4 + 1, (kill_at, seen, first_step)  # from the last checkpoint
    for got, want in zip(_weights(tmp_path / "killed"), _weights(tmp_path / "reference")):
        assert np.abs(got - want).max() <= 1e-6 * max(np.abs(want).max(), 1.0), kill_at


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    out = _run(tmp_path, "--nan-at", "10")
    assert out.returncode != 0
    assert "NonFiniteLossError" in out.stderr and "at step 10" in out.stderr
    assert "ckpt-8" in out.stderr  # names the last good checkpoint
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-8")
    reader = tf.train.load_checkpoint(latest)
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("weights/")]
    assert names
    for name in names:
        assert np.isfinite(reader.get_tensor(name)).all(), name


def test_nan_weights_after_the_last_update_never_leave_the_trainer(tmp_path):
    """The loss stays finite but the last update leaves a NaN weight: earlier the run
    ended normally and saved it; now it stops, and every checkpoint on disk is finite."""
    out = _run(tmp_path, "--poison-weights-at", "24")
    assert out.returncode != 0
    assert "NonFiniteWeightsError" in out.stderr and "step 24" in out.stderr
    assert not (tmp_path / "final.npz").exists()
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    reader = tf.train.load_checkpoint(latest)
    for name in reader.get_variable_to_shape_map():
        if name.startswith("weights/"):
            assert np.isfinite(reader.get_tensor(name)).all(), (latest, name)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_and_history_covers_the_whole_run(tmp_path):
    """A truncated latest checkpoint: earlier the restore crashed; now it is named, the
    previous one is used, and the run ends with the uninterrupted run's weights and
    its whole per-step history (earlier history.json held only the steps after a resume)."""
    reference = _run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    partial = _run(tmp_path / "resumed", "--steps", "12")  # checkpoints 8 and 12
    assert partial.returncode == 0, partial.stderr[-3000:]
    data = tmp_path / "resumed" / "checkpoints" / "ckpt-12.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    resumed = _run(tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ckpt-12 is unreadable" in resumed.stdout
    assert "step 8 of 24" in resumed.stdout
    steps = [int(l.split()[1]) for l in resumed.stdout.splitlines() if l.startswith("STEP")]
    assert steps[0] == 9
    for got, want in zip(_weights(tmp_path / "resumed"), _weights(tmp_path / "reference")):
        assert np.abs(got - want).max() <= 1e-6 * max(np.abs(want).max(), 1.0)
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    expected = json.loads((tmp_path / "reference" / "history.json").read_text())
    assert history["step"] == list(range(1, 25)) == expected["step"]
    for key in ("loss", "in_batch_accuracy"):
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_check_finite_weights_names_the_first_bad_weight_in_any_float_dtype(dtype):
    """Checked in the weight's own dtype (no float64 host copy): one NaN or Inf in any
    float weight is found and named; integer weights pass; a clean model passes."""
    import keras

    from samtone_tf.numerics import NonFiniteWeightsError, check_finite_weights

    layer = keras.layers.Layer()
    good = layer.add_weight(shape=(3, 4), initializer="ones", dtype=dtype, name="good")
    count = layer.add_weight(shape=(2,), initializer="zeros", dtype="int32", name="count",
                             trainable=False)
    bad = layer.add_weight(shape=(5, 6), initializer="zeros", dtype=dtype, name="bad")
    assert {good.dtype, count.dtype} == {dtype, "int32"}
    check_finite_weights(layer)  # nothing to report
    for poison in (np.nan, np.inf, -np.inf):
        values = np.zeros((5, 6), "float64")
        values[4, 5] = poison  # the last element: nothing short-circuits before it
        bad.assign(values.astype(bad.dtype) if dtype != "bfloat16" else values)
        with pytest.raises(NonFiniteWeightsError, match=r"1 weight\(s\) .*first: .*bad"):
            check_finite_weights(layer, "here")
    bad.assign(np.zeros((5, 6)))
    check_finite_weights(layer)


def test_check_finite_weights_makes_no_host_copy():
    """Earlier each weight was copied to a float64 NumPy array (twice its size), which
    raised the default job's peak by 0.13 GB at its last step; NumPy's allocations (which
    tracemalloc sees) now stay far below one weight's size."""
    import tracemalloc

    import keras

    from samtone_tf.numerics import check_finite_weights

    layer = keras.layers.Layer()
    layer.add_weight(shape=(1024, 1024), initializer="ones", name="big")  # 4 MB float32
    check_finite_weights(layer)  # warm-up: TensorFlow's first-call allocations
    tracemalloc.start()
    try:
        check_finite_weights(layer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, peak


def test_a_relative_checkpoint_folder_resumes_from_the_same_working_directory(tmp_path):
    """Earlier: resuming `samtone train --output runs/x` said 'no intact checkpoint among
    ckpt-4, ckpt-6': the checkpoint index's names were joined to the relative folder twice."""
    steps = "10"
    reference = _run(tmp_path / "reference", "--steps", steps)
    assert reference.returncode == 0, reference.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [*HELPER, os.path.join("runs", "x"), "--steps", steps]
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith("STEP ") and int(line.split()[1]) >= 6:  # after ckpt-4
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    resumed = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first_step = int([l for l in resumed.stdout.splitlines() if l.startswith("STEP")][0].split()[1])
    assert first_step in (5, 7, 9)  # from a checkpoint, not from the start
    for got, want in zip(_weights(work / "runs" / "x"), _weights(tmp_path / "reference")):
        assert np.abs(got - want).max() <= 1e-6 * max(np.abs(want).max(), 1.0)
