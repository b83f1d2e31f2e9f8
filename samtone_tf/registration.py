"""Registers samtone_tf's Keras classes as soon as Keras is imported, so that
``import samtone_tf`` followed by ``keras.models.load_model("m.keras")`` works in a fresh
process, while ``import samtone_tf`` itself still imports neither Keras nor TensorFlow
(``samtone --help`` stays fast, and :func:`samtone_tf.heap.limit_arenas` can run before
TensorFlow starts its threads).

Keras finds a saved object's class only among registered classes (it imports a module
named in the file only for its own packages), and a class registers when its module is
imported. So: Keras already imported → the modules that define Keras classes are
imported now; otherwise an import hook (a ``sys.meta_path`` finder, Python's documented
mechanism) imports them right after Keras' own module has run.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# The modules whose import registers every samtone_tf Keras class (models, losses,
# layers, the learning-rate schedule).
KERAS_MODULES = ("samtone_tf.models", "samtone_tf.losses", "samtone_tf.layers",
                 "samtone_tf.training.schedules")


def register():
    """Imports the modules of :data:`KERAS_MODULES` not imported (or importing) yet."""
    for name in KERAS_MODULES:
        if name not in sys.modules:
            importlib.import_module(name)


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Finds ``keras`` the usual way and runs :func:`register` once its module ran."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # once, and not while looking for the real spec
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        register()


def register_with_keras():
    """Registers now when Keras is loaded, else right after it loads."""
    if "keras" in sys.modules:
        register()
    elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())
