"""A small deterministic training run for the resume / NaN tests.

    python -m tests.helpers.resumable_train RUN_DIR [--nan-at STEP] [--steps N]
                                            [--poison-weights-at STEP]

Trains a tiny tower (dropout on, so RNG state matters) for 24 steps on the shipped
SciFact with checkpoints every 4 steps, printing "STEP n" after each step; at the
end writes RUN_DIR/final.npz with every weight and RUN_DIR/history.json (the run's
per-step history). With --nan-at, the loss of that step is NaN (the batch's embeddings
are poisoned by a test-only loss subclass); with --poison-weights-at, a callback sets
one weight to NaN after that step's update (the loss stays finite); --steps stops early.
"""

import argparse
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from samtone_tf.data.beir import load_beir
from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
from samtone_tf.losses.samtone import SamToNeLoss
from samtone_tf.models.dual_encoder import DualEncoder
from samtone_tf.training.resumable import fit_resumable
from samtone_tf.resources import scifact_path
from samtone_tf.tokenizers.in_graph import HashingTokenizer
from samtone_tf.models import SmallTransformer

STEPS = 24


class PoisonedLoss(SamToNeLoss):
    """NaN loss for the batch whose step counter equals ``nan_at`` (1-based)."""

    def __init__(self, nan_at, **kwargs):
        super().__init__(**kwargs)
        self.nan_at = nan_at
        self.step = tf.Variable(0, trainable=False, dtype=tf.int64)

    def call(self, q, d, *args, **kwargs):
        self.step.assign_add(1)
        poison = tf.where(self.step == self.nan_at, np.nan, 0.0)
        return super().call(q + poison, d, *args, **kwargs)


class PoisonWeights(keras.callbacks.Callback):
    """Sets the first weight to NaN after step ``at`` (runs after the guard's check)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.at:
            weight = self.model.weights[0]
            weight.assign(np.full(weight.shape, np.nan, "float32"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--nan-at", type=int, default=0)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--poison-weights-at", type=int, default=0)
    args = parser.parse_args()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(7)
    spec = SmallTransformer(vocab_size=1024, hidden_dim=32, num_layers=1, num_heads=2,
                            intermediate_dim=64, max_length=64, dropout=0.1)
    model = DualEncoder(spec, architecture="ade-spl")
    loss = PoisonedLoss(args.nan_at, temperature=0.05) if args.nan_at else SamToNeLoss(0.05)
    model.compile(keras.optimizers.Adam(1e-3), loss=loss)
    tokenizer = HashingTokenizer(1024, 32)
    examples = examples_from_qrels(load_beir(scifact_path(), "train"))
    dataset = training_dataset(examples, tokenizer, tokenizer, 16, seed=1, epochs=1)
    callbacks = [PoisonWeights(args.poison_weights_at)] if args.poison_weights_at else []
    history = fit_resumable(model, dataset, args.steps, os.path.join(args.run_dir, "checkpoints"),
                            checkpoint_every=4, verbose=0, callbacks=callbacks,
                            on_step=lambda step: print(f"STEP {step}", flush=True))
    np.savez(os.path.join(args.run_dir, "final.npz"), *[w.numpy() for w in model.weights])
    with open(os.path.join(args.run_dir, "history.json"), "w", encoding="utf-8") as handle:
        json.dump(history, handle)
    print("DONE", flush=True)


if __name__ == "__main__":
    sys.exit(main())
