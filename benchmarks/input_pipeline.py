"""Input pipeline throughput vs model step time, same batches, same run.

    python benchmarks/input_pipeline.py [--batch-size 32] [--batches 20] [--tower minilm|small]

Measures (1) the tf.data training pipeline alone (no-duplicate batching, WordPiece
tokenization in tf.data, prefetch) in examples/s and (2) the DualEncoder train step
(SamToNe, Adam) on batches from the same pipeline, and prints both with the ratio
pipeline examples/s ÷ model examples/s (must be >= 10 for the pipeline not to matter).
"""

import argparse
import json
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--tower", default="minilm")
    args = parser.parse_args()

    import keras

    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
    from samtone_tf.losses.samtone import SamToNeLoss
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.resources import scifact_path
    from samtone_tf.models import get_backbone

    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    model = DualEncoder(get_backbone(args.tower), architecture="sde", query_max_length=64,
                        document_max_length=256)
    model.compile(keras.optimizers.Adam(1e-5), loss=SamToNeLoss(0.05))
    dataset = training_dataset(examples, model.query_tokenizer(), model.document_tokenizer(),
                               args.batch_size, seed=0, epochs=4).take(args.batches)
    for _ in dataset.take(2):  # warm-up (tracing)
        pass
    start = time.perf_counter()
    count = sum(int(batch["query_ids"].shape[0]) for batch in dataset)
    pipeline_s = time.perf_counter() - start

    cached = dataset.take(min(args.batches, 6)).cache()
    model.fit(cached.take(2), verbose=0)  # warm-up (tracing)
    start = time.perf_counter()
    model.fit(cached, verbose=0)
    steps = sum(1 for _ in cached)
    model_s = (time.perf_counter() - start) / steps
    pipeline_eps = count / pipeline_s
    model_eps = args.batch_size / model_s
    print(json.dumps({
        "batch_size": args.batch_size, "tower": args.tower,
        "pipeline_examples_per_s": pipeline_eps, "model_step_s": model_s,
        "model_examples_per_s": model_eps, "ratio_pipeline_over_model": pipeline_eps / model_eps,
    }, indent=1))


if __name__ == "__main__":
    main()
