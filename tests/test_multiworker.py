"""Distributed runs vs single-device runs: two MultiWorkerMirroredStrategy workers on
127.0.0.1 (one step, and the whole `samtone train` job), and the job on 2 logical CPUs."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # worker processes and whole jobs: minutes

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


def _start_workers(module_args, env_extra=None):
    """Two MultiWorkerMirroredStrategy workers on 127.0.0.1 running
    ``python -m <module_args>``."""
    ports = _free_ports(2)
    workers = []
    for index in range(2):
        env = dict(os.environ, **(env_extra or {}), TF_CONFIG=json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, "-m", *module_args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return workers


def _finish(workers, timeout=600):
    """Waits (bounded) for the workers, asserts they succeeded, returns their stdouts."""
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=timeout))
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    return [stdout for stdout, _ in outputs]


@pytest.mark.parametrize("cache", [None, 2], ids=["plain", "gradient_cache"])
def test_two_workers_match_single_process_step(cache):
    """SamToNe with hard negatives and id masks: one step on 2 workers × 3 rows equals
    one step of a separate single-device process on the same 6-row global batch; also
    with the gradient cache on the workers (chunks of 2 rows: 2 + 1 per worker)."""
    extra = [] if cache is None else ["--cache", str(cache)]
    outputs = _finish(_start_workers(["tests.helpers.distributed_step", "multiworker", "6",
                                      *extra]), timeout=300)
    single = subprocess.run([sys.executable, "-m", "tests.helpers.distributed_step", "single",
                             "6"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    reference = _result(single.stdout)
    for worker_out in outputs:
        results = _result(worker_out)
        for name, result in results.items():
            assert result["replicas"] == 2, name
            want = np.array(reference[name]["update"])
            got = np.array(result["update"])
            assert np.linalg.norm(want) > 1.0, name  # the step really moved the weights
            assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5, name
            assert abs(result["loss"] - reference[name]["loss"]) <= 1e-5 * abs(
                reference[name]["loss"]), (name, result["loss"], reference[name]["loss"])


def test_two_workers_gradient_cache_with_dropout_on_equals_the_uncached_step():
    """Dropout on, 2 workers: each worker's cached step equals the one-tape chunked step."""
    outputs = _finish(_start_workers(["tests.helpers.cached_dropout_step", "multiworker"]),
                      timeout=300)
    for worker_out in outputs:
        for name, result in _result(worker_out).items():
            assert result["replicas"] == 2 and result["update_norm"] > 0.1, (name, result)
            assert result["update_relerr"] <= 1e-5, (name, result)


def _h5_arrays(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return arrays


# The plain step, set explicitly: on CPU the job's "auto" default is remat + the gradient
# cache, whose 2-worker and 1-device graphs round differently; Adam's first steps turn
# that into up to 2.9e-5 on a weight with a near-zero gradient (measured: 1 of 3.9M
# after a resume), above the 2e-5 that separates the same step from another one here.
# The cached step across workers: test_two_workers_match_single_process_step and
# test_two_workers_gradient_cache_with_dropout_on_equals_the_uncached_step above.
# On the 150-document SciFact copy (tests/helpers/small_collection.py): what these tests
# check is the distributed training and who writes what; the shipped SciFact's 5,183
# documents only made each job's evaluation and plots a minute longer.
JOB = ["train", "--tower", "small", "--steps", "4", "--batch-size", "16", "--quiet",
       "--set", "training.learning_rate=0.001", "--set", "evaluation.zero_shot=false",
       "--set", "training.remat=false", "--set", "training.gradient_cache_chunk_size=null"]


@pytest.fixture(scope="module")
def job(small_scifact):
    """JOB on the small SciFact copy (3 batches of 16 an epoch: 2 epochs for 4 steps)."""
    return [*JOB, "--data", small_scifact, "--set", "training.epochs=2"]


def _samtone(*args):
    return subprocess.run([sys.executable, "-m", "samtone_tf.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def single_device_run(tmp_path_factory, job):
    """The reference: the same small job on one device (global batch 16)."""
    run = tmp_path_factory.mktemp("single") / "run"
    out = _samtone(*job, "--strategy", "default", "--output", str(run))
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def _assert_same_training(run, reference):
    """Same loss history and final weights as the reference run (Adam at lr 1e-3 moves
    each weight by ~1e-3 per step, so 2e-5 separates a match from a different step)."""
    want = json.loads((reference / "history.json").read_text())["loss"]
    got = json.loads((run / "history.json").read_text())["loss"]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    _assert_same_weights(run, reference)


def _assert_same_weights(run, reference):
    expected = _h5_arrays(reference / "checkpoints" / "final.weights.h5")
    trained = _h5_arrays(run / "checkpoints" / "final.weights.h5")
    assert expected.keys() == trained.keys() and expected
    for name, value in expected.items():
        np.testing.assert_allclose(trained[name], value, atol=2e-5, err_msg=name)


def test_train_job_on_two_logical_replicas_equals_single_device(tmp_path, single_device_run,
                                                                job):
    """`samtone train --strategy cpu:2` (MirroredStrategy) trains, evaluates and exports,
    with the same loss and weights as the single-device job on the same global batch."""
    run = tmp_path / "run"
    out = _samtone(*job, "--strategy", "cpu:2", "--output", str(run))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 replica(s)" in out.stdout and "| fine_tuned |" in out.stdout
    assert (run / "savedmodel" / "saved_model.pb").exists()
    _assert_same_training(run, single_device_run)


def test_two_worker_train_job_writes_only_the_chief_run_folder(tmp_path, single_device_run,
                                                               job):
    """`samtone train --strategy multiworker` on 2 workers sharing one --output: both
    train, only the chief writes the run folder (evaluated, exported), the other
    worker's private folder is removed, and the trained weights and loss equal the
    single-device job on the same global batch."""
    run = tmp_path / "run"
    (tmp_path / "tmp").mkdir()
    chief, worker = _finish(_start_workers(["samtone_tf.cli", *job, "--strategy", "multiworker",
                                            "--output", str(run)],
                                           {"TMPDIR": str(tmp_path / "tmp")}))
    assert "is not the chief" in worker and "training done (4 steps)" in worker
    assert "| fine_tuned |" in chief
    assert (run / "metrics.json").exists() and (run / "savedmodel" / "saved_model.pb").exists()
    assert os.listdir(tmp_path / "tmp") == []  # the worker's private folder is gone
    assert sorted(os.listdir(tmp_path)) == ["run", "tmp"]
    _assert_same_training(run, single_device_run)


def test_killed_two_worker_job_resumes_from_the_chief_checkpoints(tmp_path, job):
    """Both workers SIGKILLed after the chief's first checkpoint, then restarted: both
    resume from the chief's checkpoint (the other worker's own was private and is gone)
    and the job ends with the weights of an uninterrupted single-device run."""
    long_job = [*job, "--steps", "60", "--set", "training.checkpoint_every=10",
                "--set", "training.epochs=30"]
    run = tmp_path / "run"
    workers = _start_workers(["samtone_tf.cli", *long_job, "--strategy", "multiworker",
                              "--output", str(run)])
    index = run / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not (index.exists() and "ckpt-10" in index.read_text()):
        assert time.time() < deadline and all(w.poll() is None for w in workers), \
            "no checkpoint before the workers stopped"
        time.sleep(0.05)
    for worker in workers:
        worker.kill()
        worker.communicate()
    assert not (run / "metrics.json").exists()
    chief, worker = _finish(_start_workers(["samtone_tf.cli", *long_job, "--strategy",
                                            "multiworker", "--output", str(run)]))
    for out in (chief, worker):
        assert "resuming from" in out and "ckpt-" in out
    single = tmp_path / "single"
    out = _samtone(*long_job, "--strategy", "default", "--output", str(single))
    assert out.returncode == 0, out.stderr[-3000:]
    _assert_same_weights(run, single)  # the resumed run's history covers only its part


def test_two_workers_split_the_corpus_encoding_and_the_chief_writes_the_index(tmp_path):
    """`samtone index` under a 2-worker TF_CONFIG on 127.0.0.1: worker 0 (the chief)
    encodes shards 1, 3, 5, worker 1 shards 2, 4 into the shared shard folder; the
    chief's index searches like an index built by one process with the same shards
    (same ids, scores to 1e-6), and only the chief writes it."""
    import keras

    from samtone_tf import DualEncoder
    from samtone_tf.data.beir import load_beir
    from samtone_tf.export.saved_model import SavedModelEncoder, export_saved_model
    from samtone_tf.retrieval.index import build_index
    from tests.helpers.builders import tiny_spec
    from tests.helpers.small_collection import write_small_scifact

    keras.utils.set_random_seed(5)
    model = DualEncoder(tiny_spec(vocab_size=2000, hidden_dim=32, intermediate_dim=64,
                                  max_length=64), architecture="ade")
    export_saved_model(model, str(tmp_path / "encoder"))
    data = write_small_scifact(str(tmp_path / "data"), documents=130, train_queries=4,
                               test_queries=20)
    output = tmp_path / "index"
    workers = _start_workers(["samtone_tf.cli", "index", "--model", str(tmp_path / "encoder"),
                              "--data", data, "--output", str(output), "--shard-size", "30",
                              "--max-k", "20", "--wait-timeout", "300"])
    chief_out, worker_out = _finish(workers, timeout=300)
    shards = lambda out: sorted(int(line.split()[1]) for line in out.splitlines()
                                if line.startswith("shard "))
    assert shards(chief_out) == [1, 3, 5] and shards(worker_out) == [2, 4]
    assert "indexed 130 documents" in chief_out
    assert "worker-1: encoded shards [2, 4]" in worker_out
    assert not (tmp_path / "index.shards").exists()  # the chief removed the shard caches

    collection = load_beir(data, "test")
    build_index(SavedModelEncoder(str(tmp_path / "encoder")), collection,
                str(tmp_path / "single"), max_k=20, shard_size=30, progress=False)
    import tensorflow as tf

    queries = tf.constant([collection.queries[q] for q in collection.queries])
    got = tf.saved_model.load(str(output)).signatures["search"](texts=queries, k=tf.constant(20))
    want = tf.saved_model.load(str(tmp_path / "single")).signatures["search"](
        texts=queries, k=tf.constant(20))
    assert got["ids"].numpy().tolist() == want["ids"].numpy().tolist()
    np.testing.assert_allclose(got["scores"].numpy(), want["scores"].numpy(), atol=1e-6)
