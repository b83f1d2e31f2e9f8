"""Ownership and locking of a ``samtone train`` run folder.

A run folder is recognised by its manifest, ``samtone_run.json``, written
atomically before anything else. ``samtone train --output DIR`` accepts:

* a folder that does not exist, or an empty one: claimed (manifest, lock, config);
* a folder with a manifest: the same job resumes (its ``config.yaml`` must match; a
  manifest beside anything but the lock and no ``config.yaml`` is refused, since nothing
  ties what is there to this job).

Anything else (a folder holding files but no manifest) is refused and nothing in
it is touched: checkpoints without a manifest are never adopted, a user's
``savedmodel/`` is never replaced, a stray ``zero_shot.json`` is never read.

A live run holds an exclusive OS lock (``fcntl.flock``) on ``DIR/.samtone.lock``
for its whole life; the lock dies with the process (SIGKILL included), so no stale
lock is ever left. A second run on the same folder is refused, naming the holder
written in the lock file (pid, host, start time).
"""

from __future__ import annotations

import datetime
import json
import os

from samtone_tf.errors import UserInputError
from samtone_tf.files import FolderLock, is_leftover, refuse_link, write_json_atomic

MANIFEST = "samtone_run.json"
LOCK = FolderLock.NAME
FORMAT = "samtone_tf run folder"


class RunFolderError(UserInputError):
    """The folder cannot be used as this run's folder; the message says why."""


def is_run_folder(path):
    manifest = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest):
        return False
    try:
        with open(manifest, encoding="utf-8") as handle:
            return json.load(handle).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_usable(path):
    """Raises RunFolderError unless ``path`` is absent, empty or a run folder;
    returns True when it already is a run folder. Writes nothing."""
    refuse_link(path, "run folder")
    if not os.path.exists(path):
        return False
    if not os.path.isdir(path):
        raise RunFolderError(f"{path}: is a file, expected a run folder (--output)")
    entries = sorted(name for name in os.listdir(path)
                     if name != LOCK and not is_leftover(name))
    if is_run_folder(path):
        unclaimed = [name for name in entries
                     if name != MANIFEST and not _only_leftovers(os.path.join(path, name))]
        if unclaimed and "config.yaml" not in entries:
            raise RunFolderError(
                f"{path}: has a {MANIFEST} but no config.yaml beside {', '.join(unclaimed[:4])}; "
                "nothing ties those files to this job, refusing to adopt them. Choose a new "
                "or empty --output")
        return True
    if entries:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise RunFolderError(
            f"{path} is not a samtone run folder (no {MANIFEST}) and is not empty ({shown}); "
            "refusing to write into it. Choose a new or empty --output")
    return False


def _only_leftovers(path):
    """True for a folder holding nothing but interrupted-write leftovers (at any depth)."""
    if not os.path.isdir(path) or os.path.islink(path):
        return False
    return all(is_leftover(name) or _only_leftovers(os.path.join(path, name))
               for name in os.listdir(path))


class RunFolderLock(FolderLock):
    """The exclusive, process-lifetime lock of a run folder."""

    def __init__(self, path):
        super().__init__(path, "samtone train", RunFolderError)


def claim(path):
    """Makes ``path`` a locked run folder (manifest first); returns the held lock.

    Call after every check and validation has passed: this is the first write."""
    existed = check_usable(path)
    os.makedirs(path, exist_ok=True)
    lock = RunFolderLock(path).acquire()
    try:
        if not existed and not is_run_folder(path):
            check_usable(path)  # nothing appeared meanwhile
            from samtone_tf import __version__

            write_json_atomic(os.path.join(path, MANIFEST), {
                "format": FORMAT, "version": 1, "samtone_tf": __version__,
                "created": datetime.datetime.now().isoformat(timespec="seconds")})
    except BaseException:
        lock.release()
        raise
    return lock
