"""all-MiniLM-L6-v2 SDE trained with SamToNe under MirroredStrategy over 2 logical
CPUs; prints the probe loss before and after a few steps as one JSON line."""

import json

from samtone_tf.training.distribute import get_strategy


def main() -> dict:
    strategy = get_strategy("cpu:2")
    import keras

    from samtone_tf.data.beir import load_beir
    from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
    from samtone_tf.losses.samtone import SamToNeLoss
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.resources import scifact_path
    from samtone_tf.models import minilm

    keras.utils.set_random_seed(0)
    examples = examples_from_qrels(load_beir(scifact_path(), "train"))[:64]
    spec = minilm()
    with strategy.scope():
        model = DualEncoder(spec, architecture="sde", query_max_length=32,
                            document_max_length=48)
        model.compile(keras.optimizers.Adam(5e-5), loss=SamToNeLoss(0.05))
    data = training_dataset(examples, model.query_tokenizer(), model.document_tokenizer(),
                            global_batch_size=16, seed=0).take(2).cache()
    before = model.evaluate(data, verbose=0, return_dict=True)
    model.fit(data.repeat(3), verbose=0)
    after = model.evaluate(data, verbose=0, return_dict=True)
    return {"replicas": strategy.num_replicas_in_sync, "before": before, "after": after}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()))
