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

When Keras is first imported from inside a samtone_tf module (``from samtone_tf.losses
import SamToNeLoss`` in a fresh process: ``losses/samtone.py`` imports Keras), that module
has not defined its names yet, and importing the others then (which import it) failed
with a circular import. The registration then waits: each Keras package of samtone_tf
calls :func:`register_pending` at its end, when its names exist.
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

    looking = False

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras" or self.looking:
            return None
        # Stays in place until Keras' module has run: a probe (TensorFlow asks
        # importlib.util.find_spec("keras") before importing it) loads nothing.
        self.looking = True
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self.looking = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


_PENDING = []


def _samtone_module_initializing():
    """Whether a samtone_tf module is being executed (CPython marks its spec)."""
    return any(name.startswith("samtone_tf.") and getattr(
        getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items()))


def register_pending():
    """Registers now if the Keras hook had to wait (see the module)."""
    if _PENDING:
        _PENDING.clear()
        register()


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterKeras)]
        if _samtone_module_initializing():
            _PENDING.append(True)
        else:
            register()


def register_with_keras():
    """Registers now when Keras is loaded, else right after it loads."""
    if "keras" in sys.modules:
        register()
    elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())
