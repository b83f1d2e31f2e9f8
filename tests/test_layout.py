"""The package's rooms and what each may import (docs/layout.md): checked on the source,
function-level imports included, so a lazy import cannot hide a cycle or an upward
dependency. Private internals of Keras, keras-hub and TensorFlow are touched in one module."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "samtone_tf")

FOUNDATION = {"samtone_tf", "samtone_tf.errors", "samtone_tf.files", "samtone_tf.heap", "samtone_tf.native_log",
              "samtone_tf.batching", "samtone_tf.devices", "samtone_tf.numerics",
              "samtone_tf.internals", "samtone_tf.resources", "samtone_tf.registration"}
# room -> the rooms it may import (besides itself and the foundation)
ALLOWED = {
    "losses": set(),
    "layers": set(),
    "tokenizers": set(),
    "data": {"tokenizers"},
    "models": {"layers", "tokenizers", "losses"},
    "training": {"models", "layers", "tokenizers", "losses", "data"},
    "export": {"models", "layers", "tokenizers"},
    "retrieval": {"models", "layers", "tokenizers", "losses", "data", "export"},
    "runs": {"models", "layers", "tokenizers", "losses", "data", "export", "training",
             "retrieval"},
    "cli": {"models", "layers", "tokenizers", "losses", "data", "export", "training",
            "retrieval", "runs"},
}
PRIVATE = re.compile(r"\b(keras\.src|keras_hub\.src|tf\.__internal__|tensorflow\.python)\b")
INTERNALS = "samtone_tf/internals.py"
MAX_LINES = 420


def _modules():
    out = {}
    for base, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(base, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[module.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _resolve(name):
    """The module an imported dotted name refers to (a name inside a module → the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(path):
    """Every samtone_tf module ``path`` imports, at any depth of the code."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("samtone_tf"):
            for alias in node.names:
                found.add(_resolve(f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.startswith("samtone_tf")}
    return found - {""}


GRAPH = {module: _imports(path) - {module} for module, path in MODULES.items()}


def _room(module):
    if module in FOUNDATION:
        return "foundation"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or parts[1] in ALLOWED else module


def test_every_module_lives_in_a_room():
    lost = [m for m in MODULES if _room(m) != "foundation" and _room(m) not in ALLOWED]
    assert not lost, f"modules outside the rooms of docs/layout.md: {lost}"


def test_lower_rooms_never_import_upper_ones():
    wrong = []
    for module, imported in GRAPH.items():
        room = _room(module)
        for target in imported:
            other = _room(target)
            if other == room or other == "foundation":
                continue
            if room == "foundation" or other not in ALLOWED.get(room, set()):
                wrong.append(f"{module} ({room}) imports {target} ({other})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle():
    """Tarjan's strongly connected components over module imports (package __init__
    files re-export their modules, so a package counts as the modules it imports)."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.add(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, cycles


def test_private_internals_only_in_one_module():
    touching = []
    for module, path in MODULES.items():
        if os.path.relpath(path, ROOT) == INTERNALS:
            continue
        code = "\n".join(line for line in open(path, encoding="utf-8")
                         if not line.lstrip().startswith("#"))
        if PRIVATE.search(code):
            touching.append(module)
    assert not touching, f"private Keras/keras-hub/TensorFlow internals outside {INTERNALS}: {touching}"


def test_modules_stay_small():
    long = {m: n for m, p in MODULES.items()
            if (n := sum(1 for _ in open(p, encoding="utf-8"))) > MAX_LINES}
    assert not long, long
