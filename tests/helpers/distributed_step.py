"""One fit step under a distribution strategy vs one single-device step.

Run as ``python -m tests.helpers.distributed_step N`` (MirroredStrategy over N
logical CPUs) or ``python -m tests.helpers.distributed_step multiworker`` (one
worker of a MultiWorkerMirroredStrategy; TF_CONFIG set by the caller); prints one
JSON line with the relative errors. ``--cache N`` trains the distributed model with
the gradient cache (chunks of N rows per replica); ``--remat`` with rematerialised
transformer layers; the single-device reference uses neither; ``--lora R`` gives both models
rank-R adapters (and reports how far the frozen base moved), ``--ade-lora`` makes them ADE-LoRA. A separate process per strategy size,
because the logical-device split is fixed once TensorFlow initialises.
"""

import json
import sys

from samtone_tf.training.distribute import get_strategy


def main(mode: str, per_replica_batch: int = 3, global_batch_override=None,
         cache=None, remat=False, lora=None, architecture="ade-spl") -> dict:
    """mode "N": compare in-process; "multiworker" / "single": one side only, returning
    its losses and weight updates for the caller to compare across processes."""
    strategy = get_strategy(mode if mode == "multiworker" else
                            "default" if mode == "single" else f"cpu:{mode}")
    replicas = strategy.num_replicas_in_sync
    import keras
    import numpy as np
    import tensorflow as tf

    from samtone_tf.losses.samtone import SamToNeLoss
    from samtone_tf.models.dual_encoder import DualEncoder
    from tests.helpers.builders import contrastive_batch, tiny_spec

    keras.utils.set_random_seed(0)

    spec = tiny_spec(max_length=8)
    global_batch = global_batch_override or per_replica_batch * replicas
    # a duplicate query, a duplicate positive, another row's positive mined as hard
    batch = contrastive_batch(np.random.default_rng(global_batch), global_batch, 6, 8,
                              negatives=2, padded_tail=2, duplicates=True)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(global_batch, drop_remainder=True)

    results = {}
    configs = {
        "samtone_query": dict(same_tower="query"),
        "samtone_both_symmetric_trainable_tau": dict(
            same_tower="both", symmetric=True, trainable_temperature=True),
    }
    for name, loss_kwargs in configs.items():
        models = []
        for scope, chunk, rematerialise in ((tf.distribute.get_strategy(), None, False),
                                            (strategy, cache, remat)):
            with scope.scope():
                model = DualEncoder(spec, architecture=architecture, projection_dim=8,
                                    remat=rematerialise, lora_rank=lora)
                model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5),
                              loss=SamToNeLoss(0.05, **loss_kwargs),
                              gradient_cache_chunk_size=chunk)
            models.append(model)
        single, distributed = models
        distributed.set_weights(single.get_weights())
        start = [np.array(w) for w in single.get_weights()]
        base = {v.path: np.array(v) for v in distributed.weights
                if ("encoder" in v.path or "token_embedding" in v.path)
                and "/lora_" not in v.path and "seed" not in v.path}
        if mode in ("multiworker", "single"):  # one side; the caller compares processes
            model = distributed if mode == "multiworker" else single
            loss = model.fit(dataset, verbose=0).history["loss"][0]
            results[name] = {
                "loss": float(np.ravel(loss)[0]), "replicas": replicas,
                "update": np.concatenate([(w - s).ravel() for w, s in
                                          zip(model.get_weights(), start)]).tolist()}
            continue
        loss_single = single.fit(dataset, verbose=0).history["loss"][0]
        loss_dist = distributed.fit(dataset, verbose=0).history["loss"][0]
        w_single = single.get_weights()
        w_dist = distributed.get_weights()
        delta_s = np.concatenate([(a - s).ravel() for a, s in zip(w_single, start)])
        delta_d = np.concatenate([(b - s).ravel() for b, s in zip(w_dist, start)])
        flat_s = np.concatenate([a.ravel() for a in w_single])
        flat_d = np.concatenate([b.ravel() for b in w_dist])
        results[name] = {
            "weights_relerr": float(np.linalg.norm(flat_d - flat_s) / np.linalg.norm(flat_s)),
            "update_relerr": float(np.linalg.norm(delta_d - delta_s) / np.linalg.norm(delta_s)),
            "update_norm": float(np.linalg.norm(delta_s)),
            "loss_single": float(loss_single),
            "loss_distributed": float(loss_dist),
            "replicas": int(distributed.distribute_strategy.num_replicas_in_sync),
            "trainable": len(distributed.trainable_variables),
            "base_max_change": max(float(np.abs(np.array(v) - base[v.path]).max())
                                   for v in distributed.weights if v.path in base),
        }
    return results


if __name__ == "__main__":
    args = sys.argv[1:]
    cache = None
    if "--cache" in args:
        at = args.index("--cache")
        cache = int(args[at + 1])
        del args[at:at + 2]
    lora = None
    if "--lora" in args:
        at = args.index("--lora")
        lora = int(args[at + 1])
        del args[at:at + 2]
    remat = "--remat" in args
    architecture = "ade-lora" if "--ade-lora" in args else "ade-spl"
    args = [a for a in args if a not in ("--remat", "--ade-lora")]
    override = int(args[1]) if len(args) > 1 else None
    print("RESULT " + json.dumps(main(args[0], global_batch_override=override, cache=cache,
                                          remat=remat, lora=lora, architecture=architecture)))
