"""Encoding speed: samtone_tf vs sentence-transformers on the same documents, same run.

    python benchmarks/encode.py [--docs 1000] [--max-length 256] [--batch-size 32]

Encodes SciFact documents (title + " " + text) with all-MiniLM-L6-v2 through both
and prints docs/s for each and the ratio samtone_tf / sentence-transformers, plus
the minimum cosine between the two sets of embeddings.
"""

import argparse
import json
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from samtone_tf.data.beir import read_corpus
    from samtone_tf.models import DualEncoder
    from samtone_tf.resources import scifact_path
    from samtone_tf.towers import minilm
    import os
    from sentence_transformers import SentenceTransformer

    corpus = read_corpus(os.path.join(scifact_path(), "corpus.jsonl.gz"))
    texts = [doc.full_text for doc in list(corpus.values())[: args.docs]]
    spec = minilm()
    model = DualEncoder(spec, architecture="sde", document_max_length=args.max_length)
    model.encode_documents(texts[:64], batch_size=args.batch_size)  # warm-up / tracing
    start = time.perf_counter()
    ours = model.encode_documents(texts, batch_size=args.batch_size)
    ours_seconds = time.perf_counter() - start

    st = SentenceTransformer(spec.folder, device="cpu")
    st.max_seq_length = args.max_length
    st.encode(texts[:64], batch_size=args.batch_size)
    start = time.perf_counter()
    theirs = st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
    st_seconds = time.perf_counter() - start

    result = {
        "docs": len(texts), "max_length": args.max_length, "batch_size": args.batch_size,
        "samtone_tf_docs_per_s": len(texts) / ours_seconds,
        "sentence_transformers_docs_per_s": len(texts) / st_seconds,
        "ratio_samtone_over_st": st_seconds / ours_seconds,
        "min_cosine": float((ours * theirs).sum(1).min()),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
