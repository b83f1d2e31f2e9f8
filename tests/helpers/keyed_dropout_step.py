"""One training step of the same model computed four ways (plain, gradient cache with
chunks of 2, remat, both), dropout 0.1, SamToNe symmetric on both sides with hard
negatives; the weight updates of each.

    python -m tests.helpers.keyed_dropout_step ARCHITECTURE REPLICAS OUT.npz

runs under ``cpu:REPLICAS`` (one strategy per process) and saves the updates.
"""

import sys

ROWS = 8  # the global batch


def one_step_updates(architecture, strategy=None):
    import keras
    import numpy as np
    import tensorflow as tf

    from samtone_tf.losses import SamToNeLoss
    from samtone_tf.models import DualEncoder
    from tests.helpers.builders import contrastive_batch, tiny_spec

    strategy = strategy or tf.distribute.get_strategy()
    batch = contrastive_batch(np.random.default_rng(3), ROWS, 7, 9, negatives=2, padded_tail=2)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(ROWS, drop_remainder=True)
    spec = tiny_spec(num_layers=2, max_length=10, dropout=0.1)
    updates, start = {}, None
    for name, chunk, remat in (("plain", None, False), ("cached", 2, False),
                               ("remat", None, True), ("cached+remat", 2, True)):
        keras.utils.set_random_seed(5)
        with strategy.scope():
            model = DualEncoder(spec, architecture=architecture, projection_dim=8, remat=remat)
            model.compile(keras.optimizers.SGD(0.5),
                          loss=SamToNeLoss(0.05, same_tower="both", symmetric=True),
                          gradient_cache_chunk_size=chunk)
        weights = [np.array(w) for w in model.trainable_weights]
        if start is None:
            start = weights
        for a, b in zip(start, weights):
            np.testing.assert_array_equal(a, b)  # the same model each time
        model.fit(dataset, verbose=0)
        updates[name] = np.concatenate([(np.asarray(w) - s).ravel()
                                        for w, s in zip(model.trainable_weights, start)])
    return updates


def main():
    architecture, replicas, output = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from samtone_tf.training.distribute import get_strategy

    strategy = get_strategy(f"cpu:{replicas}")
    import numpy as np

    np.savez(output, **one_step_updates(architecture, strategy))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
