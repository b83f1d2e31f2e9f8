"""tensorflow_text, checked against TensorFlow.

tensorflow-text's kernels are built against one TensorFlow minor version; with another
they fail to load with a low-level undefined-symbol error, or load and crash later. pip
cannot express "the same minor version as tensorflow", so the package's ranges allow the
mismatch and :func:`tensorflow_text` turns it into one clear line.
"""

from __future__ import annotations


def _minor(version):
    return tuple(version.split(".")[:2])


def check_versions(tensorflow_version, text_version):
    """Raises ImportError naming both versions unless their minor versions agree."""
    if _minor(tensorflow_version) != _minor(text_version):
        raise ImportError(
            f"tensorflow-text {text_version} does not match tensorflow {tensorflow_version}: "
            f"install tensorflow-text=={'.'.join(_minor(tensorflow_version))}.* (its kernels "
            f"are built for one TensorFlow minor version)")


def tensorflow_text():
    """The ``tensorflow_text`` module (which registers its ops, needed to run or load an
    in-graph tokenizer), after :func:`check_versions`."""
    import tensorflow as tf
    import tensorflow_text as text  # a slow import, needed only where text ops run

    check_versions(tf.__version__, text.__version__)
    return text
