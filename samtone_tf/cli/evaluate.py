"""The ``samtone evaluate`` command."""

from __future__ import annotations

import os

from samtone_tf.cli.models import load_encoder, model_inputs
from samtone_tf.data.loaders import load_collection
from samtone_tf.data.runs import write_trec_run
from samtone_tf.errors import ConfigError
from samtone_tf.files import check_output, check_target, write_json_atomic
from samtone_tf.retrieval.evaluation import evaluate_index, evaluate_model
from samtone_tf.retrieval.index import is_index
from samtone_tf.retrieval.metrics import markdown_table
from samtone_tf.resources import scifact_path


def eval_command(args):
    if args.data is None:
        if args.data_format != "beir":
            raise ConfigError(f"--data is needed with --data-format {args.data_format}")
        args.data = scifact_path()
    inputs = [args.data, *model_inputs(args.model)]
    for path in (args.output, args.run_file):  # fail before the long encoding
        if path:
            check_target(path)
            check_output(path, inputs + [args.cache_dir])
    if args.cache_dir:
        check_output(args.cache_dir, inputs)
    if args.output and args.run_file and os.path.realpath(args.output) == os.path.realpath(
            args.run_file):
        raise ConfigError(f"--output and --run-file name the same file ({args.output})")
    collection = load_collection(args.data, args.split, args.data_format)
    if is_index(args.model):  # evaluate what the index serves, through its search
        for flag, value in (("--dims", args.dims), ("--cache-dir", args.cache_dir)):
            if value is not None:
                raise ConfigError(f"{flag} does not apply to an index ({args.model}): it "
                                  "serves its own dimensions and stores its own vectors")
        summary, _, run = evaluate_index(args.model, collection, k=args.k,
                                         batch_size=args.batch_size,
                                         ignore_identical_ids=args.ignore_identical_ids)
    else:
        encoder = load_encoder(args.model, args.query_max_length, args.document_max_length)
        summary, _, run = evaluate_model(encoder, collection, k=args.k,
                                         batch_size=args.batch_size,
                                         ignore_identical_ids=args.ignore_identical_ids,
                                         cache_dir=args.cache_dir, progress=True,
                                         backend=args.backend, dims=args.dims)
    summary.update(data=args.data, split=args.split, model=args.model)
    if args.output:
        write_json_atomic(args.output, summary)
    if args.run_file:
        write_trec_run(run, args.run_file)
    print(markdown_table({os.path.basename(os.path.normpath(args.model)): summary}))
    if summary.get("left_out"):
        print(f"left out (the search went {summary['search_depth']} deep): "
              + ", ".join(summary["left_out"]))
    print(f"ignore_identical_ids: {summary['ignore_identical_ids']}")
    return 0
