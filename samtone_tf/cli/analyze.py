"""The ``samtone analyze`` command."""

from __future__ import annotations

import os

import numpy as np

from samtone_tf.cli.models import load_encoder, model_inputs
from samtone_tf.data.beir import load_beir
from samtone_tf.errors import ConfigError
from samtone_tf.files import write_json_atomic
from samtone_tf.resources import scifact_path
from samtone_tf.retrieval.corpus import encode_corpus
from samtone_tf.runs import plots
from samtone_tf.training import alignment


def analyze_command(args):
    names = args.names or [os.path.basename(os.path.normpath(m)) for m in args.models]
    if len(names) != len(args.models) or len(set(names)) != len(names):
        raise ConfigError("--names needs one distinct label per model")
    data = args.data or scifact_path()
    plots.check_output_folder(
        args.output, [data, *[p for m in args.models for p in model_inputs(m)]])
    collection = load_beir(data, args.split)
    pairs = alignment.sample_pairs(collection, args.n, args.seed)
    separations, stats, summary = {}, {}, {}
    corpus_texts = [doc.full_text for doc in collection.corpus.values()]
    for name, path in zip(names, args.models):
        encoder = load_encoder(path)
        queries, documents = alignment.encode_pairs(encoder, pairs, args.batch_size)
        separations[name] = alignment.tower_separation(queries, documents, args.seed)
        corpus = None if args.no_top1 else encode_corpus(encoder, corpus_texts, args.batch_size)
        retrieval = None if corpus is None else encode_corpus(
            encoder, list(collection.queries.values()), args.batch_size, side="query")
        stats[name] = alignment.similarity_statistics(queries, documents, corpus, retrieval)
        summary[name] = {
            "model": path, "pairs": len(pairs),
            "probe_accuracy": separations[name]["probe_accuracy"],
            "probe_accuracy_std": separations[name]["probe_accuracy_std"],
            **{f"mean_{k}": float(np.mean(v)) for k, v in stats[name].items()}}
    os.makedirs(args.output, exist_ok=True)
    plots.plot_tsne(separations, os.path.join(args.output, "tsne.png"))
    plots.plot_similarities(stats, os.path.join(args.output, "similarities.png"))
    write_json_atomic(os.path.join(args.output, plots.SUMMARY), summary)
    print("| run | linear probe accuracy (0.5 = mixed) | mean top-1 | mean s(q,q') | mean s(q,d') |")
    print("|---|---|---|---|---|")
    for name, row in summary.items():
        print(f"| {name} | {row['probe_accuracy']:.3f} ± {row['probe_accuracy_std']:.3f} | "
              f"{row.get('mean_top1', float('nan')):.3f} | {row['mean_query_query']:.3f} | "
              f"{row['mean_query_document']:.3f} |")
    print(f"wrote {args.output}/tsne.png, similarities.png, analysis.json")
    return 0
