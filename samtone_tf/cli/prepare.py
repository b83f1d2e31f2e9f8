"""The ``samtone prepare`` command: a collection store (:mod:`samtone_tf.data.store`)."""

from __future__ import annotations

import os
import time

from samtone_tf.data.store import read_manifest
from samtone_tf.data.store_build import build_store
from samtone_tf.files import OutputError, check_output, refuse_link


def _ours(folder):
    """A store this command wrote (finished, or a build it left to resume)."""
    return read_manifest(folder) is not None or os.path.exists(
        os.path.join(folder, "building.json"))


def prepare_command(args):
    if not os.path.isdir(args.data):
        raise FileNotFoundError(2, "collection folder not found", args.data)
    check_output(args.output, [args.data], replaces_folder=True)
    refuse_link(args.output, "store")
    if os.path.exists(args.output):
        if not os.path.isdir(args.output):
            raise NotADirectoryError(20, "is a file, expected a store folder", args.output)
        if os.listdir(args.output) and not _ours(args.output):
            raise OutputError(f"{args.output} is not empty and not a collection store; "
                              "refusing to write into it (choose a new folder)")
        if args.overwrite and read_manifest(args.output) is not None:
            os.remove(os.path.join(args.output, "manifest.json"))  # rebuilt from the start
    started = time.monotonic()
    manifest = build_store(args.data, args.output, args.data_format)
    size = sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(args.output) for name in names)
    print(f"{args.output}: {manifest['corpus']['documents']} documents of "
          f"{manifest['corpus']['source']['path']} ({size / 1e6:.1f} MB on disk, "
          f"{time.monotonic() - started:.1f} s); use it as --data {args.output}")
    return 0
