"""Encoding speed: samtone_tf vs sentence-transformers on the same documents, same run.

    python benchmarks/encode.py [--docs 1000] [--max-length 256] [--batch-size 32]
                                [--variants] [--split] [--attention] [--fast-layers]

``--variants`` also times samtone_tf with XLA off/on and dynamic / bucketed padding (a
fresh model each, the warm-up encoding every distinct shape once, so compilation is
not counted), alternating with sentence-transformers, best of two each.

``--attention`` also times samtone_tf's two self-attention computations
(``TransformerTextEncoder(attention=...)``: "bias", the default, and "keras", Keras'
``MultiHeadAttention`` einsum + masked softmax), alternating with sentence-transformers,
best of two each (warm-up on the first 64 documents, as the default run).

``--fast-layers`` also times the encoder's dense layers and layer norms as
:mod:`samtone_tf.layers.fast_layers`' ``FusedDense`` / ``FusedEinsumDense`` /
``LeanLayerNormalization`` (the default) and as Keras' ``Dense`` / ``EinsumDense`` /
``LayerNormalization`` (switched back on the built layers; attention stays the bias
path), alternating with sentence-transformers, best of two each.
``--split`` also separates samtone_tf's one-time costs from its steady state: the
tokenization alone, then two encodings of the same token ids (the first traces each new
padded width), against sentence-transformers' ``encode`` in the same run.

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
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--split", action="store_true")
    parser.add_argument("--attention", action="store_true")
    parser.add_argument("--fast-layers", action="store_true")
    args = parser.parse_args()

    from samtone_tf.data.beir import read_corpus
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.resources import scifact_path
    from samtone_tf.models import minilm
    import os
    from sentence_transformers import SentenceTransformer

    corpus = read_corpus(os.path.join(scifact_path(), "corpus.jsonl.gz"))
    texts = [doc.full_text for doc in list(corpus.values())[: args.docs]]
    spec = minilm()
    st = SentenceTransformer(spec.folder, device="cpu")
    st.max_seq_length = args.max_length

    def ours(padding="dynamic", jit="auto", warm_all=False, attention="bias",
             dense="fused"):
        from samtone_tf.layers.attention import BiasMultiHeadAttention
        from samtone_tf.layers.encoders import fast_sublayers
        from samtone_tf.layers.fast_layers import (FusedDense, FusedEinsumDense,
                                                   LeanLayerNormalization)

        model = DualEncoder(spec, architecture="sde", document_max_length=args.max_length,
                            padding=padding, encode_jit_compile=jit)
        # Back to Keras' own layers (each samtone_tf class's direct base) where asked.
        revert = set()
        if attention == "keras":  # what TransformerTextEncoder(attention="keras") computes
            revert.add(BiasMultiHeadAttention)
        if dense == "keras":  # keras-hub's own Dense / EinsumDense / LayerNormalization
            revert |= {FusedDense, FusedEinsumDense, LeanLayerNormalization}
        encoder = model.document_tower.encoder
        if LeanLayerNormalization in revert:
            encoder.embeddings_layer_norm.__class__ = LeanLayerNormalization.__bases__[0]
        for layer in encoder.transformer_layers:
            for sublayer, cls in fast_sublayers(layer):
                if cls in revert:
                    sublayer.__class__ = cls.__bases__[0]
        model.encode_documents(texts if warm_all else texts[:64], batch_size=args.batch_size)
        start = time.perf_counter()
        embeddings = model.encode_documents(texts, batch_size=args.batch_size)
        return len(texts) / (time.perf_counter() - start), embeddings

    def theirs():
        st.encode(texts[:64], batch_size=args.batch_size)
        start = time.perf_counter()
        embeddings = st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        return len(texts) / (time.perf_counter() - start), embeddings

    ours_speed, ours_embeddings = ours()
    st_speed, st_embeddings = theirs()
    result = {
        "docs": len(texts), "max_length": args.max_length, "batch_size": args.batch_size,
        "samtone_tf_docs_per_s": ours_speed,
        "sentence_transformers_docs_per_s": st_speed,
        "ratio_samtone_over_st": ours_speed / st_speed,
        "min_cosine": float((ours_embeddings * st_embeddings).sum(1).min()),
    }
    if args.split:
        import tensorflow as tf

        model = DualEncoder(spec, architecture="sde", document_max_length=args.max_length)
        start = time.perf_counter()
        tokens = {k: v.numpy() for k, v in model.document_tokenizer()(tf.constant(texts)).items()}
        split = {"tokenize_s": time.perf_counter() - start}
        for name in ("first_encode_s", "second_encode_s"):
            start = time.perf_counter()
            model.encode_documents(tokens, batch_size=args.batch_size)
            split[name] = time.perf_counter() - start
        split["sentence_transformers_encode_s"] = len(texts) / theirs()[0]
        split["ratio_steady_state"] = (split["sentence_transformers_encode_s"]
                                       / split["second_encode_s"])
        split["ratio_first_with_tokenization"] = split["sentence_transformers_encode_s"] / (
            split["first_encode_s"] + split["tokenize_s"])
        result["split"] = split
    if args.variants:
        variants = {"xla_off_dynamic": ("dynamic", False), "xla_on_dynamic": ("dynamic", True),
                    "xla_on_buckets": ("buckets", True), "xla_off_buckets": ("buckets", False)}
        speeds = {name: [] for name in variants}
        speeds["sentence_transformers"] = []
        for _ in range(2):
            for name, (padding, jit) in variants.items():
                speeds[name].append(ours(padding, jit, warm_all=jit)[0])
            speeds["sentence_transformers"].append(theirs()[0])
        best = {name: max(values) for name, values in speeds.items()}
        result["variants_docs_per_s_best_of_2"] = best
        result["variants_ratio_over_st"] = {
            name: best[name] / best["sentence_transformers"] for name in variants}
    def alternate(prefix, variants):
        """Each of ``variants`` ({name: ours() keyword arguments}) and sentence-transformers
        in turn, twice; best docs/s, ratios and min cosine to sentence-transformers."""
        speeds = {name: [] for name in [*variants, "sentence_transformers"]}
        cosines = {}
        for _ in range(2):
            for name, kwargs in variants.items():
                speed, embeddings = ours(**kwargs)
                speeds[name].append(speed)
                cosines[name] = float((embeddings * st_embeddings).sum(1).min())
            speeds["sentence_transformers"].append(theirs()[0])
        best = {name: max(values) for name, values in speeds.items()}
        result[f"{prefix}_docs_per_s_best_of_2"] = best
        result[f"{prefix}_ratio_over_st"] = {
            name: best[name] / best["sentence_transformers"] for name in variants}
        result[f"{prefix}_min_cosine_vs_st"] = cosines

    if args.attention:
        alternate("attention", {"attention_bias": {"attention": "bias"},
                                "attention_keras": {"attention": "keras"}})
    if args.fast_layers:
        alternate("layers", {"fast_layers": {"dense": "fused"},
                             "keras_layers": {"dense": "keras"}})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
