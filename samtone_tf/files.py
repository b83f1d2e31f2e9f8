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
* Temporary names are ``.samtone-tmp-<token><tag>-<target name>``: a random token and
  a tag derived from it, so a leftover of a killed write is told from a user's file by
  its name alone (:func:`is_leftover`); :func:`remove_leftovers` removes such names (and
  TensorFlow's ``ckpt-N_temp`` checkpoint folders) inside a folder the package owns,
  and nothing else: a user's ``.samtone-tmp-notes`` stays.
* :func:`check_output` refuses an output path that is an input, lies inside an input
  folder, or would replace a folder holding an input; :func:`open_no_follow` opens a
  file for writing in place without following a symlink.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil

from samtone_tf.errors import UserInputError

TEMP_PREFIX = ".samtone-tmp-"
_TEMPORARY = re.compile(r"\.samtone-tmp-(?P<token>[0-9a-f]{12})(?P<tag>[0-9a-f]{8})-(?P<rest>.+)")
_TF_TEMPORARY = re.compile(r"ckpt-[0-9]+_temp")


class OutputError(UserInputError):
    """An output path that would replace or write into an input, or follow a link."""


def _tag(token):
    return hashlib.sha256(f"samtone_tf temporary {token}".encode()).hexdigest()[:8]


def temporary_name(target, suffix=""):
    """A fresh name for a temporary of ``target`` (a path): in the same folder,
    ``.samtone-tmp-<token><tag>-<name><suffix>``, the tag proving the package made it."""
    token = secrets.token_hex(6)
    parent, name = os.path.split(os.path.abspath(target))
    return os.path.join(parent, f"{TEMP_PREFIX}{token}{_tag(token)}-{name}{suffix}")


def leftover_target(name):
    """The target name a temporary called ``name`` was made for (with any suffix),
    or None when ``name`` is not one the package made."""
    match = _TEMPORARY.fullmatch(name)
    if match is None or _tag(match["token"]) != match["tag"]:
        return None
    return match["rest"]


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
    while True:
        temporary = temporary_name(path, suffix)
        try:  # a fresh file, never through a link (O_EXCL fails on any existing name)
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600))
            break
        except FileExistsError:
            continue
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
    permissions."""
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    while True:
        folder = temporary_name(target)
        try:
            os.mkdir(folder, 0o700)
            break
        except FileExistsError:
            continue
    os.chmod(folder, 0o777 & ~umask())
    return folder


def refuse_link(path, what="output"):
    """Raises OutputError when ``path`` itself is a symbolic link (its parents may be)."""
    if os.path.islink(path):
        raise OutputError(f"{path}: is a symbolic link; samtone never writes through one "
                          f"(give the {what}'s real path)")


def check_replaceable(folder, overwrite, ours, what, error=OutputError):
    """Refuses, writing nothing, a folder target that is a link or a file, exists without
    ``overwrite``, or is not ``what`` (``ours(folder)`` false): ``--overwrite`` replaces
    only a folder the same command wrote."""
    refuse_link(folder)
    if not os.path.exists(folder):
        return
    if not os.path.isdir(folder):
        raise NotADirectoryError(20, f"is a file, expected {what}", folder)
    if not overwrite:
        raise FileExistsError(f"{folder} exists; pass overwrite=True (--overwrite) to replace it")
    if not ours(folder):
        raise error(f"{folder} is not {what}; refusing to replace it (--overwrite replaces "
                    "only those)")


def open_no_follow(path, flags=os.O_RDWR | os.O_CREAT):
    """A file descriptor of ``path`` opened in place (a lock file, say), refusing a
    symbolic link at ``path`` with OutputError instead of writing through it."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o666 & ~umask())
    except OSError as error:
        if os.path.islink(path):
            raise OutputError(f"{path}: is a symbolic link; samtone never writes through "
                              "one") from None
        raise error


def check_output(path, inputs=(), replaces_folder=False):
    """Refuses (OutputError, nothing touched) an output ``path`` that is, or resolves
    to, one of ``inputs`` (files or folders the command reads), lies inside an input
    folder, or, when ``replaces_folder`` (the command may replace ``path`` whole), holds
    an input inside it. Links are resolved first, so a link to an input is caught."""
    real = os.path.realpath(path)
    for item in inputs:
        if not item or not os.path.exists(item):
            continue
        source = os.path.realpath(item)
        if real == source:
            raise OutputError(f"{path}: is an input of this command ({item}); refusing to "
                              "write over it")
        if os.path.isdir(source) and real.startswith(source.rstrip(os.sep) + os.sep):
            raise OutputError(f"{path}: lies inside the input {item}; refusing to write "
                              "into an input collection or model (choose a path outside it)")
        if replaces_folder and source.startswith(real.rstrip(os.sep) + os.sep):
            raise OutputError(f"{path}: holds the input {item}; replacing it would delete "
                              "an input")


def write_folder_atomic(target, fill):
    """Writes the folder ``target`` atomically: removes what a killed earlier write of
    the same target left beside it, calls ``fill(temporary)`` on a fresh folder beside
    it, then swaps it in (an existing ``target`` is renamed aside first and removed
    last, so a kill leaves the old or the new folder, never neither). On an error the
    temporary folder is removed and the error raised. A symbolic link at ``target``
    is refused (OutputError), never replaced or followed."""
    target = os.path.abspath(target)
    refuse_link(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(target)
    for name in os.listdir(parent):  # an earlier write of this target that was killed
        if leftover_target(name) in (base, base + ".old"):
            _remove(os.path.join(parent, name))
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
    """A name the package's own interrupted writes leave behind (a temporary name it
    made, :func:`temporary_name`, or TensorFlow's ``ckpt-N_temp`` checkpoint folder)."""
    return leftover_target(name) is not None or bool(_TF_TEMPORARY.fullmatch(name))


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def remove_leftovers(folder, log=None):
    """Removes interrupted-write leftovers directly inside ``folder``; returns them."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if not is_leftover(name):
            continue
        path = os.path.join(folder, name)
        _remove(path)
        removed.append(path)
    if removed and log is not None:
        log(f"removed {len(removed)} leftover(s) of an interrupted write: "
            + ", ".join(os.path.basename(p) for p in removed[:5]))
    return removed


class FolderLock:
    """An exclusive lock on ``folder`` held by this process for as long as it runs
    (``fcntl.flock`` on ``folder/.samtone.lock``; the OS drops it when the process
    dies, SIGKILL included, so no stale lock is ever left). A second holder is refused
    with ``error``, naming the first (pid, host, start time) and ``command``."""

    NAME = ".samtone.lock"

    def __init__(self, folder, command="samtone", error=OutputError):
        self.folder, self.command, self.error = folder, command, error
        self.path = os.path.join(folder, self.NAME)
        self._handle = None

    def acquire(self):
        import datetime
        import fcntl
        import socket

        handle = os.fdopen(open_no_follow(self.path), "r+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = handle.read().strip() or "another process"
            handle.close()
            raise self.error(f"{self.folder} is in use by a running {self.command} ({holder}); "
                             "wait for it to end or choose another --output") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                     f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self, remove=False):
        """Drops the lock (``remove``: deletes the lock file first, while still held)."""
        if self._handle is not None:
            import fcntl

            if remove:
                with contextlib.suppress(OSError):
                    os.remove(self.path)
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
