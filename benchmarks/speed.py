"""Training step time, same run: SamToNe vs standard loss in samtone_tf, and samtone_tf vs
sentence-transformers MultipleNegativesRankingLoss(directions=("query_to_doc",
"query_to_query")) (= SamToNe query side) on the same all-MiniLM-L6-v2.

    python benchmarks/speed.py [--batch-size 32] [--length 64] [--steps 8] [--job-shapes]

``--job-shapes``: the default job's real shapes instead: queries and documents up to
256 tokens, each batch padded to its longest text (dynamic padding) on both sides, the
same no-duplicate batches (seed 0) for both libraries.

samtone_tf sides are measured twice, alternating, best of two, each after an untimed
pass over the same batches (so tracing a new padded width is not timed; the weights move
by one more pass of steps, which does not change the work per step). Both sides: SDE, batch 32,
queries and documents truncated/padded to 64 tokens, Adam, τ = 0.05 (scale 20), the same
SciFact training pairs. Prints seconds per step and ratios.
"""

import argparse
import json
import time


def samtone_step_time(examples, args, same_tower):
    import keras

    from samtone_tf.data.pipeline import training_dataset
    from samtone_tf.losses import SamToNeLoss
    from samtone_tf.models import DualEncoder
    from samtone_tf.towers import minilm

    keras.utils.set_random_seed(0)
    length = None if args.job_shapes else args.length  # None: MiniLM's own 256
    model = DualEncoder(minilm(), architecture="sde", query_max_length=length,
                        document_max_length=length)
    model.compile(keras.optimizers.Adam(2e-5), loss=SamToNeLoss(0.05, same_tower=same_tower))
    if args.job_shapes:
        query_tokenizer, document_tokenizer = model.query_tokenizer(), model.document_tokenizer()
    else:
        query_tokenizer = document_tokenizer = model.backbone.make_tokenizer(
            args.length, pad_to_max_length=True)
    data = training_dataset(examples, query_tokenizer, document_tokenizer, args.batch_size,
                            seed=0).take(args.steps).cache()
    list(data)
    # one untimed pass over the same batches traces every padded shape they contain
    # (dynamic padding: a new width may retrace), so the timed pass is steady state
    model.fit(data, verbose=0)
    start = time.perf_counter()
    model.fit(data, verbose=0)
    return (time.perf_counter() - start) / args.steps


def sentence_transformers_step_time(examples, args):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from samtone_tf.towers import minilm_path

    torch.manual_seed(0)
    model = SentenceTransformer(minilm_path(), device="cpu")
    model.max_seq_length = 256 if args.job_shapes else args.length
    loss = MultipleNegativesRankingLoss(model, scale=20.0,
                                        directions=("query_to_doc", "query_to_query"))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-5)
    model.train()

    def features(texts):
        tokens = model.tokenize(texts)
        if args.job_shapes:  # padded to the batch's longest, as on the samtone_tf side
            return {k: v for k, v in tokens.items() if torch.is_tensor(v)}
        # fixed length, as on the samtone_tf side
        return {k: torch.nn.functional.pad(v, (0, args.length - v.shape[1]))
                for k, v in tokens.items() if torch.is_tensor(v)}

    from samtone_tf.data.pipeline import no_duplicate_batches

    batches = no_duplicate_batches(examples, args.batch_size, 0)  # samtone_tf's batches
    times = []
    for step in list(range(args.steps)) * 2:  # the same batches as samtone_tf, twice
        batch = [examples[i] for i in batches[step]]
        queries = features([e.query for e in batch])
        documents = features([e.document for e in batch])
        start = time.perf_counter()
        value = loss([queries, documents], labels=None)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sum(times[args.steps:]) / args.steps  # the second pass, as samtone_tf's


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--job-shapes", action="store_true",
                        help="the default job's shapes: up to 256 tokens, dynamic padding")
    args = parser.parse_args()

    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.pipeline import examples_from_qrels
    from samtone_tf.resources import scifact_path

    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    # alternate and keep each side's best of two, so that warm-up order does not bias it
    times = {"none": [], "query": []}
    for same_tower in ("none", "query", "none", "query"):
        times[same_tower].append(samtone_step_time(examples, args, same_tower))
    standard, samtone = min(times["none"]), min(times["query"])
    reference = sentence_transformers_step_time(examples, args)
    print(json.dumps({
        "batch_size": args.batch_size, "steps": args.steps,
        "length": "job shapes (<= 256, dynamic)" if args.job_shapes else args.length,
        "samtone_tf_standard_s_per_step": standard,
        "samtone_tf_samtone_s_per_step": samtone,
        "ratio_samtone_over_standard": samtone / standard,
        "sentence_transformers_mnrl_q2d_q2q_s_per_step": reference,
        "ratio_samtone_tf_over_sentence_transformers": samtone / reference,
        "all_samtone_tf_s_per_step": times,  # in the order measured: none, query, none, query
    }, indent=1))


if __name__ == "__main__":
    main()
