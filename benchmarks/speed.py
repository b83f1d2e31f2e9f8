"""Training step time, same run: SamToNe vs standard loss in samtone_tf, and samtone_tf vs
sentence-transformers MultipleNegativesRankingLoss(directions=("query_to_doc",
"query_to_query")) (= SamToNe query side) on the same all-MiniLM-L6-v2.

    python benchmarks/speed.py [--batch-size 32] [--length 64] [--steps 8] [--job-shapes]
                               [--rounds 3] [--control]

``--job-shapes``: the default job's real shapes instead: queries and documents up to
256 tokens, each batch padded to its longest text (dynamic padding) on both sides, the
same no-duplicate batches (seed 0) for both libraries.

Each side (samtone_tf standard loss, samtone_tf SamToNe, sentence-transformers) is built
once and makes one untimed pass over the batches (tracing every padded width on the
samtone_tf sides, warming PyTorch's allocator). Then ``--rounds`` rounds: in each, every
side makes one timed pass over the same batches, in an order rotated from round to round,
so a slow spell of the machine falls on a different side each time. Ratios are taken
within a round (the sides of a ratio ran minutes apart, not a whole run apart) and the
median over rounds is reported, with every round's numbers. The weights move by one pass
per round, which does not change the work per step. Both libraries: SDE, Adam, τ = 0.05
(scale 20), the same SciFact training pairs; the samtone_tf sides run the plain step
(``DualEncoder.fit``; no gradient cache or rematerialisation), as sentence-transformers does.

``--control`` adds one more side, a second standard-loss model built the same way
("standard_again"), and reports standard_again / standard per round and its median: two
sides that do the same work, so how far that ratio strays from 1 is the measurement's
own noise, to read SamToNe / standard against (the same loss on two models differed by
up to 12% in single rounds; docs/RESULTS.md).
"""

import argparse
import json
import statistics
import time


def samtone_side(examples, args, same_tower):
    """A pass function: one ``fit`` over the cached batches, seconds per step."""
    import keras

    from samtone_tf.data.pipeline import training_dataset
    from samtone_tf.losses.samtone import SamToNeLoss
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.models import minilm

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

    def run_pass():
        start = time.perf_counter()
        model.fit(data, verbose=0)
        return (time.perf_counter() - start) / args.steps

    return run_pass


def sentence_transformers_side(examples, args):
    """A pass function over the same batches as samtone_tf's, seconds per step."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from samtone_tf.data.pipeline import no_duplicate_batches
    from samtone_tf.models import minilm_path

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

    batches = []
    for rows in no_duplicate_batches(examples, args.batch_size, 0)[:args.steps]:
        batch = [examples[i] for i in rows]
        batches.append((features([e.query for e in batch]),
                        features([e.document for e in batch])))

    def run_pass():  # tokenized beforehand: samtone_tf's batches are cached tokens too
        start = time.perf_counter()
        for queries, documents in batches:
            value = loss([queries, documents], labels=None)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        return (time.perf_counter() - start) / args.steps

    return run_pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--control", action="store_true",
                        help="a second standard-loss side: the noise of a ratio of equals")
    parser.add_argument("--job-shapes", action="store_true",
                        help="the default job's shapes: up to 256 tokens, dynamic padding")
    args = parser.parse_args()

    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.pipeline import examples_from_qrels
    from samtone_tf.resources import scifact_path

    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    sides = {"standard": samtone_side(examples, args, "none"),
             "samtone": samtone_side(examples, args, "query"),
             "sentence_transformers": sentence_transformers_side(examples, args)}
    ratios = {"samtone_over_standard": ("samtone", "standard"),  # name: (numerator, denominator)
              "samtone_tf_over_sentence_transformers": ("samtone", "sentence_transformers")}
    if args.control:
        sides["standard_again"] = samtone_side(examples, args, "none")
        ratios["control_standard_again_over_standard"] = ("standard_again", "standard")
    warm = {name: run_pass() for name, run_pass in sides.items()}  # untimed in the ratios
    names = list(sides)
    rounds = []
    for number in range(args.rounds):
        order = names[number % len(names):] + names[:number % len(names)]
        seconds = {name: sides[name]() for name in order}
        rounds.append({"order": order, "s_per_step": seconds,
                       **{key: seconds[a] / seconds[b] for key, (a, b) in ratios.items()}})
        print(json.dumps(rounds[-1]), flush=True)
    print(json.dumps({
        "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds,
        "length": "job shapes (<= 256, dynamic)" if args.job_shapes else args.length,
        "median_s_per_step": {name: statistics.median(r["s_per_step"][name] for r in rounds)
                              for name in names},
        **{f"median_ratio_{key}": statistics.median(r[key] for r in rounds) for key in ratios},
        "warm_pass_s_per_step": warm,
    }, indent=1))


if __name__ == "__main__":
    main()
