"""Preemption and numeric failures lose nothing."""

import os
import random
import signal
import subprocess
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPER = [sys.executable, "-u", "-m", "tests.helpers.resumable_train"]


def _run(run_dir, *extra):
    return subprocess.run([*HELPER, str(run_dir), *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def _weights(run_dir):
    with np.load(os.path.join(run_dir, "final.npz")) as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


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
