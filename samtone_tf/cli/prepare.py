"""The ``samtone prepare`` command: a collection store (:mod:`samtone_tf.data.store`)."""

from __future__ import annotations

import os
import time

from samtone_tf.data.store import read_manifest, stored_corpus
from samtone_tf.data.store_build import build_store, load_stored
from samtone_tf.data.triples import triple_columns
from samtone_tf.files import OutputError, check_output, refuse_link
from samtone_tf.retrieval.bm25 import bm25_index


def _ours(folder):
    """A store this command wrote (finished, or a build it left to resume)."""
    return read_manifest(folder) is not None or os.path.exists(
        os.path.join(folder, "building.json"))


def prepare_command(args):
    if not os.path.isdir(args.data):
        raise FileNotFoundError(2, "collection folder not found", args.data)
    if args.triples and not os.path.isfile(args.triples):
        raise FileNotFoundError(2, "triples file not found", args.triples)
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
    if args.triples:
        started = time.monotonic()
        train = load_stored(args.output, "train")
        columns = triple_columns(args.triples, train, os.path.join(args.output, "triples"))
        print(f"{args.triples}: {len(columns)} triples mapped to rows into "
              f"{os.path.join(args.output, 'triples')} ({time.monotonic() - started:.1f} s); "
              f"train with --set data.triples={args.triples}")
    if args.bm25:
        started = time.monotonic()
        index = bm25_index(stored_corpus(args.output)[0])
        print(f"BM25 index of {len(index)} documents, {len(index.vocabulary)} terms, "
              f"{int(index.indptr[-1])} postings ({time.monotonic() - started:.1f} s)")
    return 0
