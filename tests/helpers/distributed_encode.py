"""Encoding under MirroredStrategy over 2 logical CPUs vs a single-device copy."""

import json

from samtone_tf.training.distribute import get_strategy


def main():
    strategy = get_strategy("cpu:2")
    import keras
    import numpy as np

    from samtone_tf.models.dual_encoder import DualEncoder
    from tests.helpers.builders import tiny_spec

    keras.utils.set_random_seed(0)
    spec = tiny_spec(vocab_size=500, max_length=64)
    single = DualEncoder(spec, architecture="ade")
    with strategy.scope():
        distributed = DualEncoder(spec, architecture="ade")
    distributed.set_weights(single.get_weights())
    texts = [f"text number {i} " + "word " * (i % 13) for i in range(37)]
    a = distributed.encode_documents(texts, batch_size=8)
    b = single.encode_documents(texts, batch_size=8)
    return {"max_abs_diff": float(np.abs(a - b).max()), "rows": len(a),
            "replicas": strategy.num_replicas_in_sync,
            "used_distribution": distributed.distribute_strategy is strategy}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()))
