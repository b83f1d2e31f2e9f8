"""Self-attention on CPU: Keras' MultiHeadAttention vs samtone_tf's BiasMultiHeadAttention
(and PyTorch's fused kernel), same run, same shapes.

    python benchmarks/attention.py [--batch 32] [--length 256] [--rounds 3]

1. One attention call of a MiniLM layer (12 heads × 32, inference, padded keys): the
   projected Q/K/V → output core of each layer (``_compute_attention``), Keras' einsum +
   masked softmax vs the additive bias + ``tf.matmul`` path, vs
   ``torch.nn.functional.scaled_dot_product_attention`` with a boolean mask.
2. A training step of a MiniLM-sized ``TransformerTextEncoder`` (6 layers, 384 hidden,
   dropout 0.1; forward + backward of a scalar of its output) at half the batch,
   ``attention="keras"`` vs ``"bias"`` with the same weights.

Each timing is the best of ``--rounds`` alternating rounds after a warm-up call; prints
one JSON object (times in ms) with the ratios bias / keras.
"""

import argparse
import json
import time

import numpy as np


def best_ms(functions, rounds, repeats=1):
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(repeats):
                function()
            times[name].append((time.perf_counter() - start) / repeats * 1000)
    return {name: round(min(values), 1) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import keras
    import tensorflow as tf
    import torch

    from samtone_tf.layers.attention import BiasMultiHeadAttention
    from samtone_tf.layers.encoders import TransformerTextEncoder

    B, L, heads, head_dim, hidden = args.batch, args.length, 12, 32, 384
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(B, L, heads, head_dim)).astype("float32") for _ in range(3))
    lengths = rng.integers(L // 2, L + 1, size=B)
    padding = np.arange(L)[None, :] < lengths[:, None]
    calls, outputs = {}, {}
    for name, cls in (("keras", keras.layers.MultiHeadAttention),
                      ("bias", BiasMultiHeadAttention)):
        layer = cls(num_heads=heads, key_dim=head_dim, dropout=0.1)
        layer.build(query_shape=(B, L, hidden), value_shape=(B, L, hidden))
        core = tf.function(lambda q, k, v, layer=layer: layer._compute_attention(
            q, k, v, attention_mask=tf.constant(padding[:, None, :]), training=False)[0])
        tq, tk, tv = (tf.constant(x) for x in (q, k, v))
        outputs[name] = core(tq, tk, tv).numpy()
        calls[name] = lambda core=core, a=(tq, tk, tv): core(*a).numpy()
    torch.set_num_threads(tf.config.threading.get_intra_op_parallelism_threads() or 2)
    pq, pk, pv = (torch.tensor(x).transpose(1, 2).contiguous() for x in (q, k, v))
    mask = torch.tensor(padding)[:, None, None, :]

    def sdpa():
        with torch.inference_mode():
            return torch.nn.functional.scaled_dot_product_attention(pq, pk, pv, attn_mask=mask)

    outputs["torch"] = sdpa().transpose(1, 2).numpy()
    calls["torch_sdpa"] = sdpa
    result = {"batch": B, "length": L,
              "layer_call_ms": best_ms(calls, args.rounds, repeats=5),
              "max_abs_diff_bias_vs_keras": float(np.abs(outputs["bias"] - outputs["keras"]).max()),
              "max_abs_diff_torch_vs_keras": float(np.abs(outputs["torch"] - outputs["keras"]).max())}
    result["layer_call_bias_over_keras"] = round(
        result["layer_call_ms"]["bias"] / result["layer_call_ms"]["keras"], 3)

    half = B // 2
    x = tf.constant(rng.normal(size=(half, L, hidden)).astype("float32"))
    pad = tf.constant(padding[:half])
    encoders = {a: TransformerTextEncoder(hidden, 6, heads, 4 * hidden, 512, dropout=0.1,
                                          attention=a) for a in ("keras", "bias")}
    for encoder in encoders.values():
        encoder.build((half, L, hidden))
    encoders["bias"].set_weights(encoders["keras"].get_weights())
    steps = {}
    for name, encoder in encoders.items():
        @tf.function
        def step(encoder=encoder):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(encoder(x, pad, training=True)))
            return loss, tape.gradient(loss, encoder.trainable_variables)

        step()
        steps[name] = lambda step=step: float(step()[0])
    result["train_step_ms"] = best_ms(steps, args.rounds)
    result["train_step_bias_over_keras"] = round(
        result["train_step_ms"]["bias"] / result["train_step_ms"]["keras"], 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
