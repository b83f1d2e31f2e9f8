"""The handlers of ``samtone index``, ``samtone mine`` and ``samtone analyze``, and the
model loading every command shares (``samtone_tf.cli`` parses the arguments)."""

from __future__ import annotations

import os

import numpy as np

from samtone_tf.errors import ConfigError, DataError


def model_inputs(path):
    """The paths a ``--model`` / ``--checkpoint`` / ``--pretrained`` value reads (for
    the output checks): the folder itself, or the installed MiniLM's for 'minilm'."""
    if path == "minilm":
        from samtone_tf.backbones import minilm_path

        return [minilm_path()] if minilm_path() else []
    return [path] if path else []


def load_encoder(path, query_max_length=None, document_max_length=None):
    from samtone_tf.export import SavedModelEncoder

    if path == "minilm":  # the installed all-MiniLM-L6-v2, zero-shot
        from samtone_tf.backbones import MINILM_INSTALL_HINT, minilm_path

        if minilm_path() is None:
            raise ImportError(MINILM_INSTALL_HINT)
        path = minilm_path()
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return SavedModelEncoder(path)
    if os.path.exists(os.path.join(path, "savedmodel", "saved_model.pb")):
        return SavedModelEncoder(os.path.join(path, "savedmodel"))
    if os.path.exists(os.path.join(path, "config.json")):  # zero-shot pretrained folder
        return pretrained_model(path, "sde", query_max_length, document_max_length)
    raise FileNotFoundError(f"{path}: not a SavedModel, run folder or pretrained model folder")


def pretrained_model(folder, architecture, query_max_length, document_max_length):
    """A DualEncoder of a pretrained folder at its own lengths unless flags say otherwise."""
    from samtone_tf.backbones import get_backbone
    from samtone_tf.models import ARCHITECTURES, DualEncoder

    if architecture not in ARCHITECTURES:
        raise ConfigError(f"--architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    backbone = get_backbone(folder, fallback=False)
    try:
        return DualEncoder(backbone, architecture=architecture,
                           query_max_length=query_max_length,
                           document_max_length=document_max_length)
    except ValueError as error:  # a length beyond the backbone's positions
        raise ConfigError(f"--{str(error).replace('_', '-')}") from error


def index_command(args):
    from samtone_tf.data.loaders import load_collection
    from samtone_tf.index import build_index
    from samtone_tf.resources import scifact_path

    from samtone_tf.files import check_output

    data = args.data or scifact_path()
    check_output(args.output, [data, *model_inputs(args.model)], replaces_folder=True)
    collection = load_collection(data, args.split, args.data_format)
    encoder = load_encoder(args.model)
    dim = getattr(encoder, "embedding_dim", None) or encoder.config.get("embedding_dim")
    if args.dims and dim and args.dims > int(dim):
        raise ConfigError(f"--dims {args.dims} exceeds the model's {dim} dimensions")
    info = build_index(encoder, collection, args.output, dims=args.dims,
                       quantization=args.quantization, max_k=args.max_k, rescore=args.rescore,
                       rescore_vectors=args.rescore_vectors,
                       shard_size=args.shard_size, batch_size=args.batch_size,
                       overwrite=args.overwrite, wait_timeout=args.wait_timeout,
                       block_rows=args.block_rows)
    if "task" in info:
        print(f"{info['task']}: encoded shards {info['shards']} into {args.output}.shards; "
              "the chief writes the index")
        return 0
    print(f"indexed {info['documents']} documents ({info['quantization']}, "
          f"{info['dims'] or info['dim']} dims, {info['vector_bytes'] / 1e6:.1f} MB of vectors "
          f"in {len(info['blocks'])} block(s), max_k {info['max_k']}) into {args.output}")
    return 0


def mine_command(args):
    from samtone_tf import mining
    from samtone_tf.data.loaders import load_collection
    from samtone_tf.data.runs import write_trec_run
    from samtone_tf.files import check_output, check_target
    from samtone_tf.resources import scifact_path

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


def analyze_command(args):
    from samtone_tf import analysis
    from samtone_tf.data.beir import load_beir
    from samtone_tf.evaluation import encode_corpus
    from samtone_tf.resources import scifact_path
    from samtone_tf.files import write_json_atomic

    names = args.names or [os.path.basename(os.path.normpath(m)) for m in args.models]
    if len(names) != len(args.models) or len(set(names)) != len(names):
        raise ConfigError("--names needs one distinct label per model")
    data = args.data or scifact_path()
    analysis.check_output_folder(
        args.output, [data, *[p for m in args.models for p in model_inputs(m)]])
    collection = load_beir(data, args.split)
    pairs = analysis.sample_pairs(collection, args.n, args.seed)
    separations, stats, summary = {}, {}, {}
    corpus_texts = [doc.full_text for doc in collection.corpus.values()]
    for name, path in zip(names, args.models):
        encoder = load_encoder(path)
        queries, documents = analysis.encode_pairs(encoder, pairs, args.batch_size)
        separations[name] = analysis.tower_separation(queries, documents, args.seed)
        corpus = None if args.no_top1 else encode_corpus(encoder, corpus_texts, args.batch_size)
        retrieval = None if corpus is None else encode_corpus(
            encoder, list(collection.queries.values()), args.batch_size, side="query")
        stats[name] = analysis.similarity_statistics(queries, documents, corpus, retrieval)
        summary[name] = {
            "model": path, "pairs": len(pairs),
            "probe_accuracy": separations[name]["probe_accuracy"],
            "probe_accuracy_std": separations[name]["probe_accuracy_std"],
            **{f"mean_{k}": float(np.mean(v)) for k, v in stats[name].items()}}
    os.makedirs(args.output, exist_ok=True)
    analysis.plot_tsne(separations, os.path.join(args.output, "tsne.png"))
    analysis.plot_similarities(stats, os.path.join(args.output, "similarities.png"))
    write_json_atomic(os.path.join(args.output, analysis.SUMMARY), summary)
    print("| run | linear probe accuracy (0.5 = mixed) | mean top-1 | mean s(q,q') | mean s(q,d') |")
    print("|---|---|---|---|---|")
    for name, row in summary.items():
        print(f"| {name} | {row['probe_accuracy']:.3f} ± {row['probe_accuracy_std']:.3f} | "
              f"{row.get('mean_top1', float('nan')):.3f} | {row['mean_query_query']:.3f} | "
              f"{row['mean_query_document']:.3f} |")
    print(f"wrote {args.output}/tsne.png, similarities.png, analysis.json")
    return 0
