"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 vs a single-process step."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _result(stdout):
    lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):])


def test_two_workers_match_single_process_step():
    """SamToNe with hard negatives and id masks: one step on 2 workers × 3 rows equals
    one step of a separate single-device process on the same 6-row global batch."""
    ports = _free_ports(2)
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.distributed_step", "multiworker", "6"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300))  # bounded time
    finally:
        for worker in workers:
            worker.kill()
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "tests.helpers.distributed_step", "single",
                             "6"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    reference = _result(single.stdout)
    for worker_out in outputs:
        results = _result(worker_out[0])
        for name, result in results.items():
            assert result["replicas"] == 2, name
            want = np.array(reference[name]["update"])
            got = np.array(result["update"])
            assert np.linalg.norm(want) > 1.0, name  # the step really moved the weights
            assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5, name
            assert abs(result["loss"] - reference[name]["loss"]) <= 1e-5 * abs(
                reference[name]["loss"]), (name, result["loss"], reference[name]["loss"])
