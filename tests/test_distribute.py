"""Cross-replica training equals single-device training on the global batch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from samtone_tf.training import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("replicas,cache,remat,lora", [
    (2, None, False, None), (4, None, False, None), (2, 2, False, None), (2, None, True, None),
    pytest.param(2, None, False, 4, marks=pytest.mark.slow),
    pytest.param(2, 2, False, 4, marks=pytest.mark.slow),
    pytest.param(2, None, False, "ade", marks=pytest.mark.slow),
    pytest.param(2, 2, True, "ade", marks=pytest.mark.slow)],
    ids=["2", "4", "2-gradient-cache", "2-remat", "2-lora", "2-gradient-cache-lora",
         "2-ade-lora", "2-gradient-cache-remat-ade-lora"])
def test_mirrored_fit_step_equals_single_device_step(replicas, cache, remat, lora):
    """MirroredStrategy over N logical CPUs (one process per N), SamToNe with hard
    negatives and id masks, one SGD step: same weights as one single-device step (also
    with the gradient cache on the replicas: chunks of 2 of each replica's 3 rows, and
    with rematerialised layers on the replicas, and with LoRA adapters or ADE-LoRA's two
    adapter sets on one base, whose frozen base stays bit-identical)."""
    extra = ([] if cache is None else ["--cache", str(cache)]) + (["--remat"] if remat else [])
    extra += [] if lora is None else ["--lora", "4"] + (["--ade-lora"] if lora == "ade" else [])
    process = subprocess.run(
        [sys.executable, "-m", "tests.helpers.distributed_step", str(replicas), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    results = json.loads(lines[-1][len("RESULT "):])
    for name, result in results.items():
        assert result["replicas"] == replicas, name
        assert result["update_norm"] > 1.0, name  # the step really moved the weights
        assert result["update_relerr"] < 1e-5, (name, result)
        assert result["weights_relerr"] < 1e-5, (name, result)
        assert abs(result["loss_distributed"] - result["loss_single"]) <= 1e-5 * abs(
            result["loss_single"]), (name, result)
        if lora:  # adapters (query, value × A, B; 1 layer; 2 towers or 2 sides on one
            # encoder), the projection (ADE-SPL: shared; ADE-LoRA: one per side), τ
            assert result["base_max_change"] == 0.0, (name, result)
            projections = 2 if lora == "ade" else 1
            assert result["trainable"] == 4 * 2 + projections + name.endswith("tau"), (
                name, result)
        else:
            assert result["base_max_change"] > 0.0, (name, result)


@pytest.mark.parametrize("spec,match", [("gpu-farm", "unknown strategy"), ("cpu:x", "integer N")])
def test_bad_strategy_strings(spec, match):
    with pytest.raises(ValueError, match=match):
        distribute.get_strategy(spec)


def test_default_and_auto_on_cpu_are_single_replica():
    assert distribute.get_strategy("default").num_replicas_in_sync == 1
    if not tf.config.list_logical_devices("GPU"):
        assert distribute.get_strategy("auto").num_replicas_in_sync == 1


def test_encoding_under_mirrored_strategy_equals_single_device():
    process = subprocess.run([sys.executable, "-m", "tests.helpers.distributed_encode"],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2 and result["used_distribution"] and result["rows"] == 37
    assert result["max_abs_diff"] < 1e-5


@pytest.mark.slow  # ~50 s; the dropout-in-every-step-kind check covers the cache too
def test_gradient_cache_with_dropout_on_two_replicas_equals_the_uncached_step():
    """Dropout on, 2 logical CPU replicas: the cached step equals Keras' plain step
    (dropout keyed on the example), for SamToNe and symmetric + τ."""
    process = subprocess.run(
        [sys.executable, "-m", "tests.helpers.cached_dropout_step", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    for name, result in json.loads(lines[-1][len("RESULT "):]).items():
        assert result["replicas"] == 2 and result["update_norm"] > 0.1, (name, result)
        assert result["update_relerr"] <= 1e-5, (name, result)


@pytest.mark.parametrize("architecture", [
    "sde", pytest.param("ade", marks=pytest.mark.slow)])  # ~90 s each; ADE with the slow
def test_two_replicas_draw_one_devices_dropout_in_every_step_kind(tmp_path, architecture):
    """Dropout 0.1, SamToNe symmetric with hard negatives: under 2 logical CPU replicas
    the plain, cached (chunks of 2), remat and cached + remat steps give the same update,
    and it equals the one-device plain step (masks keyed on the global example)."""
    from tests.helpers.keyed_dropout_step import one_step_updates

    output = tmp_path / "updates.npz"
    process = subprocess.run(
        [sys.executable, "-m", "tests.helpers.keyed_dropout_step", architecture, "2",
         str(output)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    one_device = one_step_updates(architecture)["plain"]
    with np.load(output) as replicated:
        for name in replicated.files:
            error = np.linalg.norm(replicated[name] - one_device) / np.linalg.norm(one_device)
            assert error <= 1e-5, (name, error)


@pytest.mark.slow  # a MirroredStrategy process
def test_per_worker_input_gives_each_replica_its_rows_of_the_global_batch():
    """PerWorkerInput (each input pipeline builds only its rows, then per-replica
    batches) gives every replica exactly what experimental_distribute_dataset cut from
    the whole global batch, skipped steps included, for the in-memory and the streaming
    pipeline (hard negatives); two shares are the global batch's two halves."""
    for name, result in _helper_result("per_worker_input", "2").items():
        assert result == {"steps": 4, "replicas": 2, "equal": True,
                          "shares_are_halves": True, "share_rows": 4}, name


def _helper_result(module, *args):
    """The RESULT line of ``python -m tests.helpers.<module> ARGS`` (one strategy per
    process), parsed; asserts the process succeeded."""
    process = subprocess.run([sys.executable, "-m", f"tests.helpers.{module}", *args],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])
