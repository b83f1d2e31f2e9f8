"""The ``samtone`` argument parser: one subparser per command, flags typed and checked."""

from __future__ import annotations

import argparse
import math


def parse_override(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set needs section.key=value, got {text!r}")
    key, value = text.split("=", 1)
    if "." not in key:
        raise argparse.ArgumentTypeError(f"--set needs section.key=value, got {text!r}")
    from samtone_tf.runs.config import yaml_load

    return key, yaml_load(value)  # the configuration files' rules: true/false, 2e-5


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _shard(text):
    index, sep, count = str(text).partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        index = count = -1
    if not sep or count <= 0 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return index, count


# One example per subcommand, shown at the end of its --help (each runs as written
# after `samtone train --output runs/default`; tests/test_cli.py checks they parse).
EXAMPLES = {
    "train": "samtone train --output runs/default",
    "eval": "samtone eval --model runs/default --output metrics.json   (zero-shot: --model minilm)",
    "export": "samtone export --pretrained minilm --output minilm-savedmodel",
    "index": "samtone index --model runs/default --output scifact-index --quantization int8",
    "mine": "samtone mine --model minilm --split train --output mined.trec --num 8 --range 10-100",
    "analyze": "samtone analyze runs/default --output analysis",
    "prepare": "samtone prepare path/to/msmarco --data-format msmarco --output msmarco-store",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="samtone",
        description="Dual-encoder retrieval training with the SamToNe loss (TensorFlow/Keras).")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", epilog="example: " + EXAMPLES["train"],
        help="fine-tune a dual encoder, evaluate zero-shot and fine-tuned, export",
        description="Runs offline with no arguments: all-MiniLM-L6-v2 SDE + SamToNe on the "
                    "SciFact copy shipped in the package (the small tower when the MiniLM "
                    "extra is not installed). Writes RUN_DIR/metrics.json ('zero_shot', "
                    "'fine_tuned'), RUN_DIR/savedmodel/, checkpoints and TensorBoard logs.")
    train.add_argument("--config", help="YAML file; sections data/model/loss/training/"
                                        "evaluation as in samtone_tf/configs/default.yaml")
    train.add_argument("--output", help="run folder (default runs/<timestamp>)")
    train.add_argument("--set", dest="overrides", action="append", type=parse_override, default=[],
                       metavar="SECTION.KEY=VALUE",
                       help="override one field, e.g. --set model.architecture=ade")
    for flag, field in (("--data", "data.path"), ("--data-format", "data.format"),
                        ("--tower", "model.tower"),
                        ("--architecture", "model.architecture"),
                        ("--same-tower", "loss.same_tower"), ("--strategy", "training.strategy")):
        train.add_argument(flag, dest=field, help=f"shortcut for --set {field}=...")
    for flag, field, kind in (("--batch-size", "training.global_batch_size", _positive_int),
                              ("--epochs", "training.epochs", _positive_int),
                              ("--steps", "training.steps", _positive_int),
                              ("--learning-rate", "training.learning_rate", _positive_float),
                              ("--temperature", "loss.temperature", _positive_float),
                              ("--seed", "training.seed", int),
                              ("--gradient-cache-chunk-size",
                               "training.gradient_cache_chunk_size", _positive_int)):
        train.add_argument(flag, dest=field, type=kind, help=f"shortcut for --set {field}=...")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = commands.add_parser(
        "eval", epilog="example: " + EXAMPLES["eval"],
        help="evaluate a SavedModel, run folder or HF folder on a BEIR folder",
        description="Writes a JSON with keys ndcg@10, mrr@10, p@1, recall@100, map@100 (and "
                    "every metric@k for k in 1,3,5,10,100) and prints a markdown table.")
    evaluate.add_argument("--model", required=True,
                          help="exported SavedModel, run folder, or Hugging Face BERT / "
                               "XLM-R / Gemma 3 / Qwen 3 folder")
    evaluate.add_argument("--data", help="BEIR folder (or see --data-format; default: the "
                          "shipped SciFact)")
    evaluate.add_argument("--data-format", default="beir",
                          choices=("beir", "msmarco", "multireqa", "tfds"))
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--output", help="metrics JSON path")
    evaluate.add_argument("--run-file", help="also write the TREC run here")
    evaluate.add_argument("--ignore-identical-ids", action="store_true",
                          help="drop retrieved documents whose id equals the query id (BEIR "
                               "default; right for Quora/ArguAna, wrong for Cranfield)")
    evaluate.add_argument("--k", type=_positive_int, default=100)
    evaluate.add_argument("--cache-dir", help="cache corpus embeddings here (keyed by a "
                                              "fingerprint of model weights and texts)")
    evaluate.add_argument("--backend", choices=("tf", "faiss", "auto"), default="tf",
                          help="exact search backend (auto: faiss when installed, else tf; "
                               "which is faster depends on the CPU, benchmarks/search.py)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=64)
    evaluate.add_argument("--dims", type=_positive_int,
                          help="evaluate the first D dimensions, re-normalised (Matryoshka)")
    for flag, what in (("--query-max-length", "queries"), ("--document-max-length", "documents")):
        evaluate.add_argument(flag, type=_positive_int,
                              help=f"tokens for {what} of a pretrained folder (default: the "
                                   "folder's own max_seq_length)")

    export = commands.add_parser(
        "export", epilog="example: " + EXAMPLES["export"],
        help="write a reusable SavedModel (raw strings in, embeddings out)")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="run folder written by samtone train")
    source.add_argument("--pretrained", help="Hugging Face BERT, XLM-RoBERTa, Gemma 3 or Qwen 3 "
                                "folder (zero-shot model)")
    export.add_argument("--architecture", default="sde")
    export.add_argument("--pooling", choices=("mean", "cls", "last_token"),
                        help="with --pretrained: how token vectors become one embedding "
                             "(default: the folder's sentence-transformers pooling, else mean)")
    export.add_argument("--query-prompt",
                        help='with --pretrained: text put before every query in the graph '
                             '(e.g. "query: "; default: the folder\'s sentence-transformers '
                             'prompt named "query", else none)')
    export.add_argument("--document-prompt",
                        help='with --pretrained: text put before every document (e.g. '
                             '"passage: "; default: the folder\'s prompt named "document" or '
                             '"passage", else none)')
    for flag, what in (("--query-max-length", "queries"), ("--document-max-length", "documents")):
        export.add_argument(flag, type=_positive_int,
                            help=f"tokens for {what} (default: the pretrained folder's own "
                                 "max_seq_length, sentence_bert_config.json)")
    export.add_argument("--output", required=True)
    export.add_argument("--overwrite", action="store_true")
    index = commands.add_parser(
        "index", epilog="example: " + EXAMPLES["index"],
        help="build a retrieval SavedModel: texts in, top-k document ids out",
        description="Encodes the corpus (in shards; a killed run resumes) and writes one "
                    "SavedModel with a 'search' signature (texts: tf.string [None], k: int32) "
                    "-> ids tf.string [None, k], scores float32 [None, k], best first, plus "
                    "encode_query / encode_document. Loads with tensorflow + "
                    "tensorflow_text only. With TF_CONFIG naming several chief/worker "
                    "tasks, each encodes its share of the shards and the chief writes "
                    "the index (output on storage all of them reach).")
    index.add_argument("--model", required=True,
                       help="SavedModel, run folder, pretrained folder or 'minilm'")
    index.add_argument("--data", help="collection folder (default: the shipped SciFact)")
    index.add_argument("--data-format", default="beir",
                       choices=("beir", "msmarco", "multireqa", "tfds"))
    index.add_argument("--split", default="test", help="split to load (the corpus is shared)")
    index.add_argument("--output", required=True)
    index.add_argument("--quantization", choices=("none", "int8", "binary"), default="none")
    index.add_argument("--dims", type=_positive_int,
                       help="keep the first D dimensions, re-normalised (Matryoshka)")
    index.add_argument("--max-k", type=_positive_int, default=1000)
    index.add_argument("--rescore-vectors", choices=("sign", "int8"), default="sign",
                       help="binary: re-score against the sign vectors (32x smaller) or int8 "
                            "codes stored beside the bits (3.6x smaller, near float32)")
    index.add_argument("--rescore", type=_positive_int, default=10,
                       help="binary: re-score RESCORE x k Hamming candidates in float")
    index.add_argument("--shard-size", type=_positive_int, default=50_000)
    index.add_argument("--block-rows", type=_positive_int, default=262_144,
                       help="rows per stored block of vectors (one variable each; the default "
                            "is 384 MiB at 384-d float32)")
    index.add_argument("--batch-size", type=_positive_int, default=64)
    index.add_argument("--wait-timeout", type=_positive_int, default=1800,
                       help="multi-worker: seconds the chief waits for a new shard of "
                            "another worker before it gives up")
    index.add_argument("--overwrite", action="store_true",
                       help="replace an index written earlier by samtone index")
    index.add_argument("--shard", type=_shard, metavar="I/N",
                       help="encode only shards I, I+N, I+2N, ... (0-based I) into "
                            "OUTPUT.shards and stop; the process with 0/N also waits for the "
                            "others' shards and writes the index (instead of TF_CONFIG)")

    prepare = commands.add_parser(
        "prepare", epilog="example: " + EXAMPLES["prepare"],
        help="read a collection once into an on-disk store (memory-mapped corpus)",
        description="Streams the corpus of a BEIR or MS MARCO folder into Apache Arrow files "
                    "read by memory map, so training, evaluation, mining and indexing hold "
                    "no copy of it; a killed build resumes after its last finished part, "
                    "and a store is reused while its source file keeps its size, time and "
                    "sampled content (sha256 of 64 spread blocks). Use the "
                    "store as --data (queries and judgements are read from the folder it "
                    "was built from). Collections whose corpus file holds 64 MB or more go "
                    "through a store by themselves ($SAMTONE_STORE_DIR, default "
                    "~/.cache/samtone_tf/stores).")
    prepare.add_argument("data", metavar="DATA", help="BEIR or MS MARCO folder")
    prepare.add_argument("--data-format", default="beir", choices=("beir", "msmarco"))
    prepare.add_argument("--output", required=True, help="store folder (new, or a store)")
    prepare.add_argument("--overwrite", action="store_true",
                         help="rebuild a store written earlier by samtone prepare")
    prepare.add_argument("--triples", metavar="FILE",
                         help="also map an MS MARCO id-triples file (qid, positive pid, "
                              "negative pid) to rows of the train split into the store, "
                              "what data.triples reads (so a job starts at once)")
    prepare.add_argument("--bm25", action="store_true",
                         help="also build the corpus' BM25 inverted index into the store "
                              "(what data.hard_negatives: bm25 and samtone mine --bm25 read)")

    mine = commands.add_parser(
        "mine", epilog="example: " + EXAMPLES["mine"],
        help="mine hard negatives with a dense model (or BM25) into a TREC run",
        description="Ranks the whole corpus for every judged query of --split and keeps, per "
                    "query, the first --num documents in the 0-based rank window --range that "
                    "are not judged relevant and pass the filters (s+ = the score of the "
                    "query's lowest-scoring positive): score <= s+ - M, score <= R * s+, "
                    "score <= S. Writes 'query_id Q0 doc_id rank score samtone-mine' lines "
                    "that data.hard_negatives reads; prints what each filter removed.")
    mine.add_argument("--model", help="SavedModel, run folder, pretrained folder or 'minilm' "
                                      "(not with --bm25)")
    mine.add_argument("--bm25", action="store_true", help="rank with BM25 instead of a model")
    mine.add_argument("--data", help="collection folder (default: the shipped SciFact)")
    mine.add_argument("--data-format", default="beir",
                      choices=("beir", "msmarco", "multireqa", "tfds"))
    mine.add_argument("--split", default="train")
    mine.add_argument("--output", required=True, help="TREC run file to write")
    mine.add_argument("--num", type=_positive_int, default=8, help="negatives per query")
    mine.add_argument("--range", default="0-100", dest="window",
                      help="START-END: 0-based ranks in the model's ranking of the corpus, "
                           "END excluded (e.g. 10-210); START- for no end")
    mine.add_argument("--absolute-margin", type=_finite_float, metavar="M")
    mine.add_argument("--relative-margin", type=_finite_float, metavar="R")
    mine.add_argument("--max-score", type=_finite_float, metavar="S")
    mine.add_argument("--batch-size", type=_positive_int, default=64)

    analyze = commands.add_parser(
        "analyze", epilog="example: " + EXAMPLES["analyze"],
        help="t-SNE + linear-probe separation of the towers; similarity histograms",
        description="For each run folder or SavedModel: N queries and their N positive "
                    "documents through both towers → t-SNE picture and the cross-validated "
                    "accuracy of a linear probe telling the towers apart (0.5 = one mixed "
                    "cloud); histograms of top-1 retrieval similarity and of s(q_i,q_j), "
                    "s(q_i,d_j), all runs side by side.")
    analyze.add_argument("models", nargs="+", metavar="RUN_OR_SAVEDMODEL")
    analyze.add_argument("--data", help="BEIR folder (default: the shipped SciFact)")
    analyze.add_argument("--split", default="test")
    analyze.add_argument("--n", type=_positive_int, default=400, help="queries and documents (each)")
    analyze.add_argument("--names", nargs="+", help="labels for the runs")
    analyze.add_argument("--output", required=True, help="folder for PNGs and analysis.json")
    analyze.add_argument("--no-top1", action="store_true",
                         help="skip encoding the corpus for the top-1 histogram")
    analyze.add_argument("--seed", type=int, default=0)
    analyze.add_argument("--batch-size", type=_positive_int, default=16,
                         help="rows per encoding batch (16, as the job's evaluation: on CPU "
                              "64 rows of 256-token abstracts peaked 0.65 GB higher at the "
                              "same speed)")
    return parser
