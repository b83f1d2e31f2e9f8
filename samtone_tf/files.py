"""Safe file writing: atomic, symlink-proof, never NaN in JSON, leftovers cleaned.

Every file the package writes goes through here:

* :func:`atomic_path` yields a fresh temporary name in the target's own folder,
  created with ``O_CREAT | O_EXCL`` under an unpredictable name (``mkstemp``), so a
  symlink planted beside the target is never followed; on success the temporary
  replaces the target with ``os.replace`` (which replaces a symlink at the target
  itself rather than writing through it), on failure it is removed.
* Files get the usual permissions (``0o666 & ~umask``), not ``mkstemp``'s 0600.
* :func:`write_json_atomic` refuses NaN/Inf (``json`` would write bare ``NaN``,
  which is not JSON) and names the key that held it.
* Temporary names start with ``.samtone-tmp-``; :func:`remove_leftovers` removes
  such names (and TensorFlow's ``*_temp`` checkpoint folders) left by a killed
  write, and only those, inside a folder the package owns.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile

TEMP_PREFIX = ".samtone-tmp-"


def umask():
    """The process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path):
    if os.path.isdir(path) and not os.path.islink(path):
        raise IsADirectoryError(21, "is a directory, expected a file path", path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise NotADirectoryError(20, "is a file, expected a folder", parent)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside ``path``; renames it onto ``path`` when the
    block ends without an exception, removes it otherwise."""
    path = os.fspath(path)
    check_target(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX + os.path.basename(path) + ".",
                                         suffix=suffix, dir=parent)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~umask())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and error.filename is None and error.errno:
            raise OSError(error.errno, error.strerror, path) from error  # name the path
        raise


def write_text_atomic(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically (see the module docstring)."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def non_finite_key(value, where=""):
    """The first key path in ``value`` holding NaN/Inf ("" for the root), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(value)"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite_key(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def write_json_atomic(path, value):
    """Writes ``value`` as JSON; raises ValueError naming the key of a NaN/Inf."""
    key = non_finite_key(value)
    if key is not None:
        raise ValueError(f"{path}: refusing to write a non-finite number at {key!r}")
    write_text_atomic(path, json.dumps(value, indent=2, allow_nan=False))


def make_temporary_folder(target):
    """A fresh folder beside ``target`` (for an atomic folder write), with the usual
    permissions instead of ``mkdtemp``'s 0700."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=TEMP_PREFIX + os.path.basename(target) + ".", dir=parent)
    os.chmod(folder, 0o777 & ~umask())
    return folder


def write_folder_atomic(target, fill):
    """Writes the folder ``target`` atomically: removes what a killed earlier write of
    the same target left beside it, calls ``fill(temporary)`` on a fresh folder beside
    it, then swaps it in (an existing ``target`` is renamed aside first and removed
    last, so a kill leaves the old or the new folder, never neither). On an error the
    temporary folder is removed and the error raised."""
    import shutil

    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    prefix = TEMP_PREFIX + os.path.basename(target) + "."
    for name in os.listdir(parent):  # an earlier write of this target that was killed
        if name.startswith(prefix):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    temporary = make_temporary_folder(target)
    try:
        fill(temporary)
        if os.path.exists(target):
            old = temporary + ".old"
            os.rename(target, old)
            os.rename(temporary, target)
            shutil.rmtree(old)
        else:
            os.rename(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def is_leftover(name):
    """A name the package's own interrupted writes leave behind."""
    return name.startswith(TEMP_PREFIX) or (name.startswith("ckpt-") and "_temp" in name)


def remove_leftovers(folder, log=None):
    """Removes interrupted-write leftovers directly inside ``folder``; returns them."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if not is_leftover(name):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
        removed.append(path)
    if removed and log is not None:
        log(f"removed {len(removed)} leftover(s) of an interrupted write: "
            + ", ".join(os.path.basename(p) for p in removed[:5]))
    return removed
