"""The ``samtone mine`` command."""

from __future__ import annotations

from samtone_tf.cli.models import load_encoder, model_inputs
from samtone_tf.data.loaders import load_collection
from samtone_tf.data.runs import write_trec_run
from samtone_tf.errors import ConfigError, DataError
from samtone_tf.files import check_output, check_target
from samtone_tf.resources import scifact_path
from samtone_tf.retrieval import mining


def mine_command(args):
    if args.bm25 == bool(args.model):
        raise ConfigError("give exactly one of --model and --bm25")
    try:
        window = mining.parse_range(args.window)
    except ValueError as error:
        raise ConfigError(f"--{error}") from None
    data = args.data or scifact_path()
    check_target(args.output)  # fail before the long encoding
    check_output(args.output, [data, *model_inputs(args.model)])
    collection = load_collection(data, args.split, args.data_format)
    filters = dict(num=args.num, window=window, absolute_margin=args.absolute_margin,
                   relative_margin=args.relative_margin, max_score=args.max_score)
    if args.bm25:
        negatives, report = mining.mine_bm25(collection, **filters)
    else:
        negatives, report = mining.mine_from_model(load_encoder(args.model), collection,
                                                   batch_size=args.batch_size, progress=True,
                                                   **filters)
    if not report["kept"]:  # an empty run would read as 'no hard negatives' later
        raise DataError(f"no negative passed the rank window {args.window} and the filters for "
                        f"any of {report['queries']} queries; nothing written to {args.output}")
    write_trec_run(mining.as_run(negatives), args.output, tag="samtone-mine")
    removed = ", ".join(f"{rule} {count}" for rule, count in report["removed"].items())
    print(f"mined {report['kept']} negatives for {report['queries']} queries "
          f"({report['source']}, ranks {args.window}); removed: {removed}; "
          f"{report['queries_with_fewer_than_num']} queries got fewer than {args.num}")
    print(f"wrote {args.output}")
    return 0
