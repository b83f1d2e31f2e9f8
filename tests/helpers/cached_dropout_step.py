"""With dropout on, under a distribution strategy: one gradient-cache step equals the
uncached step that embeds the same chunks under one tape (same dropout masks).

    python -m tests.helpers.cached_dropout_step 2            # MirroredStrategy, 2 CPUs
    python -m tests.helpers.cached_dropout_step multiworker  # one worker (TF_CONFIG set)

Both models live under the same strategy with the same weights and dropout seed states;
prints one JSON line with the relative error of the weight updates per loss variant.
"""

import json
import sys

from samtone_tf.distribute import get_strategy

PER_REPLICA = 3
CHUNK = 2


def main(mode):
    strategy = get_strategy("multiworker" if mode == "multiworker" else f"cpu:{mode}")
    import keras
    import numpy as np
    import tensorflow as tf

    from samtone_tf import DualEncoder, SamToNeLoss, SmallTransformer, gradient_cache

    class OneTapeChunked(DualEncoder):
        """The uncached reference: the cache's chunks, in its order, under one tape."""

        def train_step(self, data):
            x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                outputs = {}
                for key, tower, tokens, _ in gradient_cache._sides(self, x):
                    rows = PER_REPLICA * (2 if key == "hard_negative_embeddings" else 1)
                    tokens = {k: tf.ensure_shape(v, [rows, None]) for k, v in tokens.items()}
                    # the last chunk completed with mask-0 rows, as the cache does
                    outputs[key] = tf.concat(
                        [tower({k: tf.pad(v[s:s + CHUNK], [[0, CHUNK - min(CHUNK, rows - s)],
                                                          [0, 0]])
                                for k, v in tokens.items()},
                               training=True)[:min(CHUNK, rows - s)]
                         for s in range(0, rows, CHUNK)], axis=0)
                outputs["hard_negative_embeddings"] = tf.reshape(
                    outputs["hard_negative_embeddings"], [PER_REPLICA, 2, -1])
                loss = self.compute_loss(x=x, y_pred=outputs)
            variables = self.trainable_variables
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(grads, variables))
            return self.compute_metrics(x, None, outputs)

    keras.utils.set_random_seed(0)
    replicas = strategy.num_replicas_in_sync
    spec = SmallTransformer(vocab_size=64, hidden_dim=16, num_layers=1, num_heads=2,
                            intermediate_dim=32, max_length=8, dropout=0.2)
    rng = np.random.default_rng(1)
    rows = PER_REPLICA * replicas

    def tokens(*shape):
        ids = rng.integers(1, 64, size=shape).astype("int32")
        return {"token_ids": ids, "padding_mask": np.ones(shape, "int32")}

    batch = {"query": tokens(rows, 6), "document": tokens(rows, 8),
             "hard_negatives": tokens(rows, 2, 8), "query_ids": np.arange(rows),
             "document_ids": 100 + np.arange(rows),
             "hard_negative_ids": 1000 + np.arange(rows * 2).reshape(rows, 2)}
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(rows, drop_remainder=True)
    results = {}
    for name, kwargs in {"samtone_query": dict(same_tower="query"),
                         "both_symmetric_trainable_tau": dict(
                             same_tower="both", symmetric=True,
                             trainable_temperature=True)}.items():
        with strategy.scope():
            cached = DualEncoder(spec, architecture="ade-spl", projection_dim=8)
            reference = OneTapeChunked(spec, architecture="ade-spl", projection_dim=8)
            for model, chunk in ((cached, CHUNK), (reference, None)):
                model.compile(keras.optimizers.SGD(0.5), loss=SamToNeLoss(0.05, **kwargs),
                              gradient_cache_chunk_size=chunk)
            reference.set_weights(cached.get_weights())
            for a, b in zip(gradient_cache._seed_states(cached),
                            gradient_cache._seed_states(reference)):
                b.assign(a)
        start = [np.array(w) for w in cached.get_weights()]
        cached.fit(dataset, verbose=0)
        reference.fit(dataset, verbose=0)
        got = np.concatenate([(np.asarray(w) - s).ravel()
                              for w, s in zip(cached.get_weights(), start)])
        want = np.concatenate([(np.asarray(w) - s).ravel()
                               for w, s in zip(reference.get_weights(), start)])
        results[name] = {"replicas": replicas, "update_norm": float(np.linalg.norm(want)),
                         "update_relerr": float(np.linalg.norm(got - want) /
                                                np.linalg.norm(want))}
    return results


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1])), flush=True)
