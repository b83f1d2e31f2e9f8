"""Atomic, symlink-proof writes; no NaN in JSON; file-system errors as one line."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from samtone_tf.files import (remove_leftovers, temporary_name, write_json_atomic,
                              write_text_atomic)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCIFACT = os.path.join(ROOT, "samtone_tf", "resources", "scifact")


def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(tmp_path):
    """Earlier: `<path>.tmp` was opened for writing, so a symlink there overwrote its target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "metrics.json"
    os.symlink(victim, str(target) + ".tmp")
    write_json_atomic(str(target), {"ndcg@10": 0.5})
    assert victim.read_text() == "precious"
    assert json.loads(target.read_text()) == {"ndcg@10": 0.5}


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "run.trec"
    os.symlink(victim, target)
    write_text_atomic(str(target), "q Q0 d 1 1.0 tag\n")
    assert victim.read_text() == "precious"
    assert not target.is_symlink() and target.read_text().startswith("q Q0 d")


def test_written_files_get_the_usual_permissions_and_no_temporary_is_left(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(str(tmp_path / "a.txt"), "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o644
    assert os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("value,key", [
    ({"ndcg@10": float("nan")}, "ndcg@10"),
    ({"zero_shot": {"p@1": float("inf")}}, "zero_shot.p@1"),
    ({"loss": [1.0, float("-inf")]}, "loss.1"),
])
def test_json_never_holds_nan(tmp_path, value, key):
    """Earlier: json.dumps wrote bare NaN (not JSON)."""
    with pytest.raises(ValueError, match=f"non-finite number at '{key}'"):
        write_json_atomic(str(tmp_path / "m.json"), value)
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_remove_leftovers_removes_only_names_the_package_made(tmp_path):
    """Earlier: any name starting with `.samtone-tmp-` was deleted, a user's file too."""
    ours = [os.path.basename(temporary_name(tmp_path / "metrics.json")),
            os.path.basename(temporary_name(tmp_path / "savedmodel")) + ".old"]
    users = [".samtone-tmp-x.json.abc", ".samtone-tmp-notes", "keep.tmp", "user_temp",
             "ckpt-4.index", "ckpt-x_temp",
             ".samtone-tmp-0123456789ab01234567-metrics.json"]  # the shape, a wrong tag
    for name in ours + users + ["ckpt-4_temp"]:
        (tmp_path / name).write_text("x")
    remove_leftovers(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(users)


def test_an_atomic_write_leaves_a_user_file_with_the_temporary_prefix_alone(tmp_path):
    from samtone_tf.files import write_folder_atomic

    user = tmp_path / ".samtone-tmp-savedmodel.mine"
    user.write_text("my notes")
    write_folder_atomic(str(tmp_path / "savedmodel"), lambda folder: None)
    write_folder_atomic(str(tmp_path / "savedmodel"), lambda folder: None)  # replaces
    assert user.read_text() == "my notes"
    assert sorted(os.listdir(tmp_path)) == [".samtone-tmp-savedmodel.mine", "savedmodel"]


def _samtone(*args):
    return subprocess.run([sys.executable, "-m", "samtone_tf.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def _error_line(stderr):
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("samtone: error:")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def small_model(small_savedmodel):
    return small_savedmodel  # conftest.py


@pytest.fixture(scope="module")
def tiny_collection(tiny_beir):
    return tiny_beir  # conftest.py


def _mount_tmpfs(path, options):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here to simulate it ({done.stderr.strip()})")
    return path


def test_eval_output_errors_are_one_line_naming_the_path(tmp_path, small_model,
                                                         tiny_collection):
    base = ["eval", "--model", small_model, "--data", tiny_collection]
    # --output naming a directory (checked before the corpus is encoded)
    out = _samtone(*base, "--output", str(tmp_path))
    assert out.returncode == 2 and str(tmp_path) in _error_line(out.stderr)
    # a file where a folder is expected
    (tmp_path / "afile").write_text("x")
    out = _samtone(*base, "--output", str(tmp_path / "afile" / "m.json"))
    line = _error_line(out.stderr)
    assert out.returncode == 2 and "afile" in line and "is a file" in line


def test_read_only_and_full_disk_are_one_line(tmp_path, small_model, tiny_collection):
    base = ["eval", "--model", small_model, "--data", tiny_collection]
    read_only = _mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    full = _mount_tmpfs(tmp_path / "full", "size=16k")
    try:
        (full / "filler").write_bytes(np.zeros(12 * 1024, np.uint8).tobytes())
        out = _samtone(*base, "--output", str(read_only / "m.json"))
        line = _error_line(out.stderr)
        assert out.returncode == 2 and str(read_only) in line and "Read-only" in line
        out = _samtone(*base, "--output", str(full / "m.json"), "--run-file",
                       str(full / "run.trec"))
        line = _error_line(out.stderr)
        assert out.returncode == 2 and str(full) in line and "No space left" in line
        left = os.listdir(full)  # no half-written file: the run file is absent, not cut
        assert "run.trec" not in left and not [n for n in left if n.startswith(".samtone-tmp")]
    finally:
        subprocess.run(["umount", str(read_only)])
        subprocess.run(["umount", str(full)])


def test_run_file_through_a_symlink_is_not_followed(tmp_path, small_model, tiny_collection):
    """Earlier: `--run-file` opened the path for writing and so wrote through a symlink."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "run.trec"
    os.symlink(victim, link)
    out = _samtone("eval", "--model", small_model, "--data", tiny_collection, "--run-file",
                   str(link))
    assert out.returncode == 0, out.stderr[-2000:]
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and " Q0 " in link.read_text()


def test_exported_savedmodel_has_the_usual_permissions(small_model):
    """Earlier: the folder kept mkdtemp's 0700."""
    mode = stat.S_IMODE(os.stat(small_model).st_mode)
    assert mode == 0o777 & ~_umask(), oct(mode)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
