"""Run folders are owned and locked: nothing of a user's is read, replaced or adopted.

Each test reproduces a failure of the earlier `samtone train` (small tower, a
150-document SciFact copy) and checks what happens now.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from samtone_tf.runs import folder as runfolder
from samtone_tf.files import make_temporary_folder, temporary_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def samtone(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "samtone_tf.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(small_scifact):
    return small_scifact  # conftest.py: the small SciFact copy, written once per session


def one_error_line(stderr):
    """The CLI's error is one line and no traceback (TensorFlow's own start-up
    logging on stderr is not ours and is left out)."""
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("samtone: error:")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


def _job(data, output, *extra):
    return ["train", "--tower", "small", "--data", data, "--steps", "2", "--batch-size", "16",
            "--output", str(output), "--quiet", *extra]


def _snapshot(folder):
    """Every path under folder with its bytes (folders as None)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder)] = handle.read()
    return out


def test_foreign_folder_is_refused_and_untouched(tmp_path, data):
    """Earlier: a user's savedmodel/ was replaced and a stray zero_shot.json reported
    as the zero-shot result, exit 0."""
    folder = tmp_path / "mine"
    (folder / "savedmodel").mkdir(parents=True)
    (folder / "savedmodel" / "saved_model.pb").write_bytes(b"my model")
    (folder / "zero_shot.json").write_text(json.dumps({"ndcg@10": 0.99}))
    before = _snapshot(folder)
    out = samtone(*_job(data, folder))
    assert out.returncode == 2, out.stderr[-2000:]
    line = one_error_line(out.stderr)
    assert "not a samtone run folder" in line and str(folder) in line
    assert _snapshot(folder) == before


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("finished") / "run"
    out = samtone(*_job(data, run))
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def test_zero_shot_metrics_score_the_weights_the_job_started_from(finished):
    """The run's zero-shot numbers equal an evaluation of the model rebuilt from its
    config.yaml with the job's seed (and differ from the fine-tuned ones)."""
    import keras

    from samtone_tf.runs.config import load_config
    from samtone_tf.data.loaders import load_collection
    from samtone_tf.training.distribute import get_strategy
    from samtone_tf.retrieval.evaluation import evaluate_model
    from samtone_tf.runs.job import build_model

    config = load_config(str(finished / "config.yaml"))
    keras.utils.set_random_seed(config["training"]["seed"])
    model = build_model(config, get_strategy("default"), log=lambda *a: None)
    data = config["data"]
    summary, _, _ = evaluate_model(
        model, load_collection(data["path"], data["eval_split"], data["format"]),
        k=config["evaluation"]["k"], batch_size=config["evaluation"]["batch_size"],
        ignore_identical_ids=data["ignore_identical_ids"], progress=False)
    metrics = json.loads((finished / "metrics.json").read_text())
    assert json.loads((finished / "zero_shot.json").read_text()) == metrics["zero_shot"]
    for key in ("ndcg@10", "mrr@10", "p@1", "recall@100", "map@100"):
        assert metrics["zero_shot"][key] == pytest.approx(summary[key], abs=1e-9), key
    assert metrics["zero_shot"]["ndcg@10"] != metrics["fine_tuned"]["ndcg@10"]


def test_checkpoints_without_a_manifest_are_never_adopted(tmp_path, finished, data):
    """Earlier: a finished run's checkpoints copied into a new folder were adopted
    silently and training was skipped."""
    first = finished
    assert runfolder.is_run_folder(str(first))
    copy = tmp_path / "copy"
    copy.mkdir()
    os.system(f"cp -r {first / 'checkpoints'} {first / 'config.yaml'} {copy}")
    before = _snapshot(copy)
    out = samtone(*_job(data, copy))
    assert out.returncode == 2 and "not a samtone run folder" in out.stderr
    assert _snapshot(copy) == before


@pytest.mark.slow  # ~45 s: two jobs
def test_a_late_error_writes_nothing_and_the_corrected_command_runs(tmp_path, data):
    """Earlier: an error found while building the model left config.yaml, and the
    corrected command was then refused as 'another configuration'."""
    run = tmp_path / "run"
    out = samtone(*_job(data, run, "--set", "model.document_max_length=100000"))
    assert out.returncode == 2 and "document_max_length" in out.stderr
    assert not run.exists()
    out = samtone(*_job(data, run))
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "metrics.json").exists()


def test_a_live_run_holds_the_lock_and_a_second_start_is_refused(tmp_path, data):
    """Earlier: two runs on one folder interleaved checkpoints and both exited 0."""
    run = tmp_path / "run"
    lock = runfolder.claim(str(run))  # this test process plays the live run
    try:
        out = samtone(*_job(data, run))
        assert out.returncode == 2, out.stderr[-2000:]
        assert "in use by a running samtone train" in out.stderr
        assert f"pid {os.getpid()}" in out.stderr  # names the holder
    finally:
        lock.release()
    assert not (run / "config.yaml").exists()


def test_the_lock_dies_with_a_killed_process(tmp_path):
    run = str(tmp_path / "run")
    code = ("import sys, time; from samtone_tf.runs import folder as runfolder; "
            f"lock = runfolder.claim({run!r}); print('HELD', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        with pytest.raises(runfolder.RunFolderError, match=f"pid {holder.pid}"):
            runfolder.RunFolderLock(run).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    deadline = time.time() + 10
    while True:  # the kernel drops the lock with the process
        try:
            runfolder.RunFolderLock(run).acquire().release()
            break
        except runfolder.RunFolderError:
            assert time.time() < deadline, "lock still held after SIGKILL"
            time.sleep(0.1)


def test_output_that_is_a_file_is_one_line(tmp_path, data):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    out = samtone(*_job(data, target))
    line = one_error_line(out.stderr)
    assert out.returncode == 2 and "is a file" in line and str(target) in line
    assert target.read_text() == "keep me"


def test_leftovers_of_interrupted_writes_are_removed_at_the_next_start(tmp_path, data):
    run = tmp_path / "run"
    runfolder.claim(str(run)).release()
    (run / "checkpoints" / "ckpt-3_temp").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-3_temp" / "part-00000-of-00001").write_bytes(b"x")
    with open(temporary_name(run / "config.yaml"), "w", encoding="utf-8") as handle:
        handle.write("half")  # what a killed write of the package leaves
    make_temporary_folder(run / "savedmodel")
    user = run.parent / ".samtone-tmp-notes"  # a user's file with the prefix: kept
    user.write_text("mine")
    out = samtone(*_job(data, run))
    assert out.returncode == 0, out.stderr[-3000:]
    left = [name for root, dirs, files in os.walk(run) for name in dirs + files
            if name.startswith(".samtone-tmp-") or name.endswith("_temp")]
    assert left == []
    assert "leftover" in out.stdout
    assert user.read_text() == "mine"


def test_export_refuses_a_checkpoint_with_nan_weights(tmp_path, finished):
    """Earlier: `samtone export --checkpoint` wrote a SavedModel of NaN weights."""
    import shutil

    import h5py
    import numpy as np

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with h5py.File(run / "checkpoints" / "final.weights.h5", "r+") as handle:
        names = []
        handle.visititems(lambda name, item: names.append(name)
                          if isinstance(item, h5py.Dataset) and item.ndim == 2 else None)
        handle[names[0]][...] = np.nan
    out = samtone("export", "--checkpoint", str(run), "--output", str(tmp_path / "sm"))
    line = one_error_line(out.stderr)
    assert out.returncode == 2 and "NonFiniteWeightsError" in line
    assert not (tmp_path / "sm").exists()

