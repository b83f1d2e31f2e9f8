"""Where the time goes: samtone_tf vs sentence-transformers, op by op, same run.

    python benchmarks/op_profile.py [--docs 64] [--batch 16] [--what encode train]

``encode``: both libraries encode the same ``--docs`` SciFact abstracts already cut to
256 word pieces (the same token ids, tokenization timed separately), batch 32, after a
warm-up on the same batches. ``train``: one training step each on the same random
full-length batch (MiniLM SDE, SamToNe query side / MNRL query_to_doc + query_to_query,
Adam, queries 64 / documents 256 tokens, dropout on; samtone_tf also with the standard
loss, to see what SamToNe's query-query term costs). TensorFlow's profiler
(``tf.profiler.experimental``, the XPlane file read with TensorFlow's own proto) and
``torch.profiler`` give each op type's total time; both are grouped into the same
categories (matmul, softmax, attention mask, GELU, layer norm, element-wise, data
movement, other) so the two columns compare. Op times are sums over threads (the
TensorFlow executor runs independent ops at once), so the shares, not the sums, are
what compare with the wall times printed beside them.
"""

import argparse
import collections
import glob
import json
import re
import tempfile
import time

CATEGORIES = (  # first match wins; lower-cased op type names
    ("matmul", r"matmul|einsum|addmm|\bmm\b|bmm|linear|tensordot"),
    ("softmax", r"softmax"),
    ("attention mask (select / add)", r"select|where|masked_fill"),
    ("gelu", r"gelu|erf"),
    ("layer norm", r"layer_?norm|moments|rsqrt|squareddifference|native_layer_norm"),
    ("element-wise", r"add|mul|sub|div|neg|cast|to_copy|pow|sqrt|sum|mean|exp|log|max|"
                     r"tanh|relu|dropout|bernoulli|random|stateless|fill|zeros|ones"),
    ("data movement", r"transpose|reshape|copy|contiguous|concat|gather|slice|view|"
                      r"permute|expand|cat|index|embedding|pad|clone|split|squeeze|unsqueeze"),
)


def category(op):
    name = op.lower()
    for label, pattern in CATEGORIES:
        if re.search(pattern, name):
            return label
    return "other"


def tf_profile(run):
    """{op type: ms} for ``run()`` under TensorFlow's profiler, and its wall seconds."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    folder = tempfile.mkdtemp(prefix="samtone-profile-")
    tf.profiler.experimental.start(folder)
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
        space.ParseFromString(f.read())
    times = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute") and line.name != "python":
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "/" in name:  # "scope/op:OpType" = one kernel
                    times[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9
    return times, wall


def torch_profile(run):
    import torch

    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    wall = time.perf_counter() - start
    times = collections.Counter()
    for event in prof.key_averages():
        if event.key.startswith("aten::") or event.key.startswith("mkldnn"):
            times[event.key] += event.self_cpu_time_total / 1e3
    return times, wall


def summarise(name, times, wall):
    total = sum(times.values())
    groups = collections.Counter()
    for op, ms in times.items():
        groups[category(op)] += ms
    return {"library": name, "wall_s": round(wall, 3), "op_ms_total": round(total, 1),
            "categories_share": {k: round(v / total, 3) for k, v in groups.most_common()},
            "categories_ms": {k: round(v, 1) for k, v in groups.most_common()},
            "top_ops_ms": {k: round(v, 1) for k, v in times.most_common(12)}}


def encode(docs):
    import numpy as np
    import tensorflow as tf
    import torch
    from sentence_transformers import SentenceTransformer

    from samtone_tf.models import minilm_path
    from samtone_tf.models.dual_encoder import DualEncoder
    from samtone_tf.models import minilm

    import accelerator

    texts = accelerator._documents(docs)
    model = DualEncoder(minilm(), architecture="sde", document_max_length=256)
    tokenizer = model.document_tokenizer()
    start = time.perf_counter()
    tokenizer(tf.constant(texts))
    ours_tokenize = time.perf_counter() - start
    st = SentenceTransformer(minilm_path(), device="cpu")
    st.max_seq_length = 256
    start = time.perf_counter()
    features = st.tokenize(texts)
    theirs_tokenize = time.perf_counter() - start
    ids = np.asarray(features["input_ids"])
    mask = np.asarray(features["attention_mask"])
    order = np.argsort(-mask.sum(1), kind="stable")  # both: length-sorted batches of 32
    ids, mask = ids[order], mask[order]
    tokens = {"token_ids": ids.astype("int32"), "padding_mask": mask.astype("int32")}
    batches = []
    for i in range(0, len(ids), 32):
        width = int(mask[i:i + 32].sum(1).max())
        batches.append((torch.tensor(ids[i:i + 32, :width]), torch.tensor(mask[i:i + 32, :width])))

    def ours():  # samtone_tf's own encoding path on the same token ids
        model.encode_documents(tokens, batch_size=32)

    def theirs():
        with torch.inference_mode():
            for i, m in batches:
                st({"input_ids": i, "attention_mask": m, "token_type_ids": torch.zeros_like(i)})

    ours()
    theirs()
    out = [summarise("samtone_tf", *tf_profile(ours)), summarise("sentence-transformers",
                                                                 *torch_profile(theirs))]
    out[0]["tokenize_s"], out[1]["tokenize_s"] = round(ours_tokenize, 3), round(theirs_tokenize, 3)
    return out


def train(batch):
    import keras
    import numpy as np
    import tensorflow as tf
    import torch
    from sentence_transformers import SentenceTransformer, losses

    from common import full_length_tokens
    from samtone_tf import DualEncoder, SamToNeLoss, minilm
    from samtone_tf.models import minilm_path

    models = {}
    for same_tower in ("query", "none"):
        keras.utils.set_random_seed(0)
        models[same_tower] = DualEncoder(minilm(), architecture="sde", query_max_length=64,
                                         document_max_length=256)
        models[same_tower].compile(keras.optimizers.Adam(2e-5),
                                   loss=SamToNeLoss(0.05, same_tower=same_tower))
    rng = np.random.default_rng(0)
    data = {"query": full_length_tokens(rng, batch, 64),
            "document": full_length_tokens(rng, batch, 256),
            "query_ids": np.arange(batch), "document_ids": np.arange(batch)}
    dataset = tf.data.Dataset.from_tensors(data).repeat(1)
    for model in models.values():
        model.fit(dataset, verbose=0)  # trace

    torch.manual_seed(0)
    st = SentenceTransformer(minilm_path(), device="cpu")
    st.max_seq_length = 256
    loss = losses.MultipleNegativesRankingLoss(st, scale=20.0,
                                               directions=("query_to_doc", "query_to_query"))
    optimizer = torch.optim.Adam(st.parameters(), lr=2e-5)
    inputs = [{"input_ids": torch.tensor(data[k]["token_ids"], dtype=torch.long),
               "attention_mask": torch.tensor(data[k]["padding_mask"], dtype=torch.long),
               "token_type_ids": torch.zeros(data[k]["token_ids"].shape, dtype=torch.long)}
              for k in ("query", "document")]
    st.train()

    def theirs():
        optimizer.zero_grad()
        loss(inputs, None).backward()
        optimizer.step()

    theirs()
    return [summarise("samtone_tf", *tf_profile(lambda: models["query"].fit(dataset, verbose=0))),
            summarise("samtone_tf standard loss",
                      *tf_profile(lambda: models["none"].fit(dataset, verbose=0))),
            summarise("sentence-transformers", *torch_profile(theirs))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--what", nargs="+", default=["encode", "train"],
                        choices=["encode", "train"])
    args = parser.parse_args()
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    import torch

    print(json.dumps({"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}))
    for what in args.what:
        for result in (encode(args.docs) if what == "encode" else train(args.batch)):
            print(json.dumps({"what": what, **result}), flush=True)


if __name__ == "__main__":
    main()
