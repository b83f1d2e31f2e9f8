"""The public API lives at the package top and imports lazily."""

import subprocess
import sys

import samtone_tf


def test_every_public_name_resolves():
    for name in samtone_tf.__all__:
        assert getattr(samtone_tf, name) is not None, name
    from samtone_tf import DualEncoder, SamToNeLoss  # the contract in DESIGN.md
    from samtone_tf.losses.samtone import SamToNeLoss as loss_class
    from samtone_tf.models.dual_encoder import DualEncoder as model_class

    assert DualEncoder is model_class and SamToNeLoss is loss_class


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, samtone_tf; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_each_namespace_imports_first_in_a_fresh_process_and_registers_every_class():
    """`from samtone_tf.losses import SamToNeLoss` as a fresh process' first line (the
    DESIGN.md contract) once failed with a circular import: Keras, first imported from
    inside losses/samtone.py, made the registration import the other packages, which import
    that half-run module. Each namespace now imports first, and afterwards every samtone_tf
    Keras class is registered, as after `import samtone_tf; import keras` (also when
    TensorFlow only probes for Keras before importing it)."""
    count = ("import keras; print(sorted(k for k in keras.saving.get_custom_objects() "
             "if k.startswith('samtone_tf>')))")
    first_lines = ["import samtone_tf", "from samtone_tf.losses import SamToNeLoss",
                   "from samtone_tf.layers import Tower", "import samtone_tf.retrieval",
                   "from samtone_tf.tokenizers import WordPieceTokenizer"]
    registered = {}
    for line in first_lines:
        out = subprocess.run([sys.executable, "-c", f"{line}\n{count}"], capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, (line, out.stderr[-2000:])
        registered[line] = out.stdout.strip().splitlines()[-1]
    assert "samtone_tf>DualEncoder" in registered["import samtone_tf"]
    assert "samtone_tf>HFQwen3" in registered["import samtone_tf"]
    assert len(set(registered.values())) == 1, registered
