"""With dropout on, under a distribution strategy: one gradient-cache step equals Keras'
plain step (dropout masks keyed on the example, samtone_tf.layers.keyed_dropout).

    python -m tests.helpers.cached_dropout_step 2            # MirroredStrategy, 2 CPUs
    python -m tests.helpers.cached_dropout_step multiworker  # one worker (TF_CONFIG set)

Both models live under the same strategy with the same weights and dropout seed;
prints one JSON line with the relative error of the weight updates per loss variant.
"""

import json
import sys

from samtone_tf.training.distribute import get_strategy

PER_REPLICA = 3
CHUNK = 2


def main(mode):
    strategy = get_strategy("multiworker" if mode == "multiworker" else f"cpu:{mode}")
    import keras
    import numpy as np
    import tensorflow as tf

    from samtone_tf import DualEncoder, SamToNeLoss
    from samtone_tf.models import gradient_cache
    from tests.helpers.builders import contrastive_batch, tiny_spec

    keras.utils.set_random_seed(0)
    replicas = strategy.num_replicas_in_sync
    spec = tiny_spec(max_length=8, dropout=0.2)
    rows = PER_REPLICA * replicas
    batch = contrastive_batch(np.random.default_rng(1), rows, 6, 8, negatives=2)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(rows, drop_remainder=True)
    results = {}
    for name, kwargs in {"samtone_query": dict(same_tower="query"),
                         "both_symmetric_trainable_tau": dict(
                             same_tower="both", symmetric=True,
                             trainable_temperature=True)}.items():
        with strategy.scope():
            cached = DualEncoder(spec, architecture="ade-spl", projection_dim=8, dropout_seed=7)
            reference = DualEncoder(spec, architecture="ade-spl", projection_dim=8,
                                    dropout_seed=7)
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
