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
