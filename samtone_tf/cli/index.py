"""The ``samtone index`` command."""

from __future__ import annotations


from samtone_tf.cli.models import load_encoder, model_inputs
from samtone_tf.data.loaders import load_collection
from samtone_tf.errors import ConfigError
from samtone_tf.files import check_output
from samtone_tf.resources import scifact_path
from samtone_tf.retrieval.index import build_index


def index_command(args):
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
                       block_rows=args.block_rows, role=args.shard)
    if "task" in info:
        print(f"{info['task']}: encoded shards {info['shards']} into {args.output}.shards; "
              "the chief writes the index")
        return 0
    print(f"indexed {info['documents']} documents ({info['quantization']}, "
          f"{info['dims'] or info['dim']} dims, {info['vector_bytes'] / 1e6:.1f} MB of vectors "
          f"in {len(info['blocks'])} block(s), max_k {info['max_k']}) into {args.output}")
    return 0
