"""Writes the Colab notebooks (run once after editing; CI executes them).

    python colab/build_notebooks.py && python colab/build_notebooks.py --execute
"""

import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

# The repository the notebooks open from and install from (a fork: change it here and
# run this script again).
REPOSITORY = "samtone-tf/samtone_tf"

SETUP = f'''# Colab: install samtone_tf (skipped when it is already importable, e.g. in CI)
import importlib.util, subprocess, sys
if importlib.util.find_spec("samtone_tf") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/{REPOSITORY}"], check=True)'''


def badge(name):
    """The "Open in Colab" badge of notebook ``name``, the first cell of each."""
    return new_markdown_cell(
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{REPOSITORY}/blob/main/colab/{name})")

SMALL = '''# SMALL = True runs in minutes on a CPU (small tower, a few steps); set False on a GPU/TPU
# for the real thing (all-MiniLM-L6-v2, full epochs).
import logging, os
SMALL = os.environ.get("SAMTONE_NOTEBOOK_SMALL", "1") == "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # keep the outputs readable'''


def quickstart():
    return [
        new_markdown_cell("# samtone_tf quickstart\n\nTrain a dual encoder with the SamToNe "
                          "loss on SciFact, evaluate zero-shot and fine-tuned, analyse the "
                          "towers, export a SavedModel and reload it with `hub.load`."),
        new_code_cell(SETUP), new_code_cell(SMALL),
        new_markdown_cell("## Train (the `samtone train` job, from Python)"),
        new_code_cell('''import tempfile, json
from samtone_tf import load_config, run_training

workdir = tempfile.mkdtemp()
overrides = {"model.tower": "small", "training.steps": 5, "training.global_batch_size": 16,
             "training.learning_rate": 1e-3} if SMALL else {}
config = load_config(None, overrides)
metrics = run_training(config, f"{workdir}/run", verbose=0)
print(json.dumps({k: round(v["ndcg@10"], 4) for k, v in metrics.items() if isinstance(v, dict)}))'''),
        new_markdown_cell("## Evaluate the exported model (what `samtone eval` does)"),
        new_code_cell('''from samtone_tf import SavedModelEncoder, evaluate_model, load_collection
from samtone_tf.retrieval.metrics import markdown_table
from samtone_tf.resources import scifact_path

encoder = SavedModelEncoder(f"{workdir}/run/savedmodel")
summary, per_query, run = evaluate_model(encoder, load_collection(scifact_path(), "test"))
print(markdown_table({"fine-tuned (reloaded)": summary}))'''),
        new_markdown_cell("## Analyse: are the towers one space?"),
        new_code_cell('''from samtone_tf.cli.main import main
main(["analyze", f"{workdir}/run", "--n", "100" if SMALL else "400", "--no-top1",
      "--output", f"{workdir}/analysis"])
from IPython.display import Image
Image(f"{workdir}/analysis/tsne.png")'''),
        new_markdown_cell("## Reload with TF Hub"),
        new_code_cell('''import tensorflow as tf, tensorflow_hub as hub, tensorflow_text  # noqa: F401
model = hub.load(f"{workdir}/run/savedmodel")
queries = model(tf.constant(["ALDH1 expression is associated with poorer prognosis"]))
documents = model.document_encoder(tf.constant(["ALDH1 in breast cancer. Abstract ..."]))
print(queries.shape, float(tf.reduce_sum(queries * documents)))'''),
    ]


def distributed():
    return [
        new_markdown_cell("# Distributed training with cross-replica SamToNe negatives\n\n"
                          "Pick the strategy first: it must be created before any other "
                          "TensorFlow work in the process. On Colab use `\"auto\"` (TPU or "
                          "GPUs); here `\"cpu:2\"` splits the CPU into two replicas that "
                          "behave like two GPUs."),
        new_code_cell(SETUP), new_code_cell(SMALL),
        new_code_cell('''from samtone_tf import get_strategy
strategy = get_strategy("cpu:2" if SMALL else "auto")
import tensorflow as tf
tf.get_logger().setLevel("ERROR")  # MirroredStrategy logs every collective at INFO
print(strategy.__class__.__name__, strategy.num_replicas_in_sync, "replicas")'''),
        new_markdown_cell("## Global batch sizing\n\nThe loss sees the **global** batch: each "
                          "replica encodes `global / replicas` rows, then all embeddings are "
                          "all-gathered so every query is contrasted with every document and "
                          "every other query of the global batch. The global batch must divide "
                          "by the replicas."),
        new_code_cell('''GLOBAL_BATCH = 16 if SMALL else 512
assert GLOBAL_BATCH % strategy.num_replicas_in_sync == 0  # `samtone train` checks it for you
print("per replica:", GLOBAL_BATCH // strategy.num_replicas_in_sync)'''),
        new_code_cell('''import keras
from samtone_tf import DualEncoder, SamToNeLoss, SmallTransformer, dataset_for, minilm
from samtone_tf.resources import scifact_path

with strategy.scope():
    backbone = SmallTransformer(hidden_dim=64, num_layers=1) if SMALL else minilm()
    model = DualEncoder(backbone, architecture="ade-spl", query_max_length=32,
                        document_max_length=64 if SMALL else 256)
    model.compile(keras.optimizers.Adam(1e-3 if SMALL else 2e-5),
                  loss=SamToNeLoss(0.05, same_tower="query"),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="replica_accuracy")])
data = dataset_for(model, scifact_path(), split="train", batch_size=GLOBAL_BATCH)
history = model.fit(data.take(6) if SMALL else data, verbose=0)
print({k: [round(x, 3) for x in v] for k, v in history.history.items()})'''),
        new_markdown_cell("## Bigger batches on the same memory: the gradient cache\n\n"
                          "`gradient_cache_chunk_size=N` embeds and back-propagates N rows "
                          "per replica at a time: the activation memory of N rows, the same "
                          "step (the towers run forward twice). Use it when the batch you "
                          "want does not fit."),
        new_code_cell('''with strategy.scope():
    cached = DualEncoder(backbone, architecture="ade-spl", query_max_length=32,
                         document_max_length=64 if SMALL else 256)
    cached.compile(keras.optimizers.Adam(1e-3 if SMALL else 2e-5),
                   loss=SamToNeLoss(0.05, same_tower="query"),
                   gradient_cache_chunk_size=4 if SMALL else 64)
BIG_BATCH = 32 if SMALL else 512  # SciFact train holds 919 pairs
data = dataset_for(cached, scifact_path(), split="train", batch_size=BIG_BATCH)
history = cached.fit(data.take(3) if SMALL else data, verbose=0)
print({k: [round(x, 3) for x in v] for k, v in history.history.items()})'''),
        new_markdown_cell("## Why gather? One step on N replicas = one step on the global "
                          "batch\n\nEach replica returns sum(its rows' losses) / global batch "
                          "and Keras sums the gradients over replicas, so the update equals a "
                          "single-device step on the whole batch (tests/test_distribute.py "
                          "checks it to ~1e-7). Scaling the batch up therefore scales the "
                          "number of negatives too — the point of cross-replica negatives."),
    ]


def reuse():
    return [
        new_markdown_cell("# Reusing an exported samtone_tf SavedModel\n\nSignatures, Keras 3 "
                          "`TFSMLayer`, tf-keras `hub.KerasLayer` fine-tuning and TF Serving."),
        new_code_cell(SETUP), new_code_cell(SMALL),
        new_code_cell('''import tempfile
from samtone_tf import DualEncoder, SmallTransformer, export_saved_model, minilm

path = tempfile.mkdtemp() + "/encoder"
model = DualEncoder(SmallTransformer(hidden_dim=32, num_layers=1) if SMALL else minilm(),
                    architecture="ade")
export_saved_model(model, path)'''),
        new_markdown_cell("## The serving signatures (string in, `embeddings` out)"),
        new_code_cell('''import tensorflow as tf, tensorflow_text  # noqa: F401  (registers tokenizer ops)
loaded = tf.saved_model.load(path)
for name, function in loaded.signatures.items():
    print(name, function.structured_input_signature[1], list(function.structured_outputs))
texts = tf.constant(["what causes rain?", "Rain forms when water vapour condenses."])
print(loaded.signatures["encode_query"](texts=texts)["embeddings"].shape)'''),
        new_markdown_cell("## Keras 3: `keras.layers.TFSMLayer` (trainable)"),
        new_code_cell('''import keras, numpy as np
layer = keras.layers.TFSMLayer(path, call_endpoint="query_encoder",
                               call_training_endpoint="query_encoder", trainable=True)
inputs = keras.Input(shape=(), dtype="string")
classifier = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))
classifier.compile(keras.optimizers.Adam(1e-3),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
classifier.optimizer.build(classifier.trainable_variables)  # build before fit
x = tf.constant(["rain", "sun", "storm", "clear sky"] * 4)
y = np.array([0, 1, 0, 1] * 4)
print(classifier.fit(x, y, epochs=3, verbose=0).history["loss"])'''),
        new_markdown_cell("## tf-keras: `hub.KerasLayer(trainable=True)`\n\n`__call__` is the "
                          "query encoder, so for an ADE model the document tower's variables "
                          "get no gradient here (TensorFlow says so); an SDE model trains all."),
        new_code_cell('''import tf_keras, tensorflow_hub as hub
tfk_model = tf_keras.Sequential([
    tf_keras.layers.InputLayer(input_shape=(), dtype=tf.string),
    hub.KerasLayer(path, trainable=True), tf_keras.layers.Dense(2)])
tfk_model.compile(tf_keras.optimizers.Adam(1e-3),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
print(tfk_model.fit(x, y, epochs=3, verbose=0).history["loss"])'''),
        new_markdown_cell("## TF Serving\n\n`saved_model_cli show --dir PATH --all` lists the "
                          "signatures; a REST request body for `POST /v1/models/NAME:predict`:"),
        new_code_cell('''import json
print(json.dumps({"signature_name": "encode_query", "instances": ["what causes rain?"]}))'''),
    ]


def retrieval():
    return [
        new_markdown_cell("# From hard negatives to a served retriever\n\nMine hard negatives "
                          "with false-negative filters, train with bucketed padding (and mixed "
                          "precision on a GPU/TPU) while watching the towers align, then build "
                          "one SavedModel that takes text and returns the corpus' own top-k ids."),
        new_code_cell(SETUP), new_code_cell(SMALL),
        new_markdown_cell("## Mine hard negatives\n\nRank the corpus for every training "
                          "query, skip the top ranks, and drop candidates that score too close "
                          "to the query's weakest positive (likely unjudged positives)."),
        new_code_cell('''import tempfile
from samtone_tf import load_collection, mine_bm25, mine_from_model, minilm, DualEncoder
from samtone_tf.retrieval.mining import as_run
from samtone_tf.resources import scifact_path

workdir = tempfile.mkdtemp()
train = load_collection(scifact_path(), "train")
if SMALL:   # BM25 ranks in seconds; a dense model (below) is the better miner
    negatives, report = mine_bm25(train, num=4, window=(5, 100), absolute_margin=1.0)
else:
    negatives, report = mine_from_model(DualEncoder(minilm()), train, num=4, window=(5, 100),
                                        absolute_margin=0.05)
print(report)'''),
        new_markdown_cell("## Train: buckets, mixed precision, Matryoshka, the alignment callback"),
        new_code_cell('''import keras
from samtone_tf import SamToNeLoss, SmallTransformer, TowerAlignment, dataset_for
from samtone_tf.training.alignment import sample_pairs

keras.utils.set_random_seed(0)
model = DualEncoder(SmallTransformer(hidden_dim=64, num_layers=1) if SMALL else minilm(),
                    architecture="ade", padding="buckets",
                    dtype=None if SMALL else "mixed_bfloat16")  # bf16 pays on GPU/TPU
model.compile(keras.optimizers.Adam(1e-3 if SMALL else 2e-5),
              loss=SamToNeLoss(0.05, same_tower="query",
                               matryoshka_dims=[64, 32] if SMALL else [384, 256, 128, 64]))
data = dataset_for(model, train, batch_size=16 if SMALL else 64,
                   hard_negatives=as_run(negatives), num_hard_negatives=1)
alignment = TowerAlignment(sample_pairs(load_collection(scifact_path(), "test"), 100),
                           every_n_steps=2 if SMALL else 20)
model.fit(data.take(6) if SMALL else data, verbose=0, callbacks=[alignment])
print({k: [round(x, 3) for x in v] for k, v in alignment.history.items()})'''),
        new_markdown_cell("## One artifact: text in, top-k ids out\n\n`build_index` is "
                          "`samtone index`; `int8` keeps 4x smaller vectors, `dims` a "
                          "Matryoshka truncation. The result loads with TensorFlow alone."),
        new_code_cell('''from samtone_tf import build_index
test = load_collection(scifact_path(), "test")
info = build_index(model, test, f"{workdir}/index", quantization="int8",
                   dims=32 if SMALL else 128, progress=False)
print(info["documents"], "documents,", info["vector_bytes"], "bytes of vectors")

import tensorflow as tf, tensorflow_text  # noqa: F401
index = tf.saved_model.load(f"{workdir}/index")
query = list(test.queries.values())[0]
for k in (1, 5):  # k is chosen per call
    found = index.signatures["search"](texts=tf.constant([query]), k=tf.constant(k))
    print(k, found["ids"].numpy()[0].astype(str).tolist(), found["scores"].numpy()[0].round(3))'''),
    ]


def multilingual():
    return [
        new_markdown_cell(
            "# Fine-tune multilingual-E5 with SamToNe and LoRA\n\n"
            "multilingual-E5 is an XLM-RoBERTa model: samtone_tf loads its Hugging Face folder "
            "(weights through keras-hub, its SentencePiece tokenizer inside the graph, equal "
            "to the PyTorch model), keeps E5's `query: ` / `passage: ` prompts in the graph, "
            "and trains LoRA adapters only — one set shared by both towers (`sde`), or one "
            "set per tower on one frozen base (`ade-lora`)."),
        new_code_cell(SETUP),
        new_code_cell(SMALL.replace("(small tower, a few steps)",
                                    "(a tiny random XLM-R, a few steps)").replace(
            "(all-MiniLM-L6-v2, full epochs)", "(intfloat/multilingual-e5-small)")),
        new_markdown_cell("## The model folder\n\nOn Colab: the published folder from the "
                          "Hugging Face Hub. In small mode: a tiny random XLM-R built with "
                          "`transformers` (what the tests compare against PyTorch)."),
        new_code_cell(r"""import tempfile
workdir = tempfile.mkdtemp()
if SMALL:
    import gzip, json, os, sentencepiece, torch, transformers
    from samtone_tf.resources import scifact_path
    with gzip.open(os.path.join(scifact_path(), "corpus.jsonl.gz"), "rt") as handle:
        lines = [json.loads(line)["text"] for line, _ in zip(handle, range(2000))]
    os.makedirs(f"{workdir}/spm")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=f"{workdir}/spm/sentencepiece.bpe",
        vocab_size=800, model_type="unigram", num_threads=1, minloglevel=2)
    folder = f"{workdir}/tiny-xlm-r"
    tokenizer = transformers.XLMRobertaTokenizer.from_pretrained(f"{workdir}/spm")
    tokenizer.save_pretrained(folder)
    os.rename(f"{workdir}/spm/sentencepiece.bpe.model", f"{folder}/sentencepiece.bpe.model")
    torch.manual_seed(0)
    transformers.XLMRobertaModel(transformers.XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=258), add_pooling_layer=False
    ).save_pretrained(folder)
else:
    from huggingface_hub import snapshot_download
    folder = snapshot_download("intfloat/multilingual-e5-small", allow_patterns=[
        "config.json", "model.safetensors", "sentencepiece.bpe.model", "tokenizer*",
        "sentence_bert_config.json"])
print(sorted(os.listdir(folder)) if SMALL else folder)"""),
        new_markdown_cell("## Zero-shot, then LoRA with SamToNe\n\n`lora_rank` adds "
                          "adapters to every attention query and value projection and "
                          "freezes everything else; `architecture=\"ade-lora\"` gives each "
                          "tower its own adapters on the one frozen base."),
        new_code_cell(r"""import keras
from samtone_tf import (DualEncoder, SamToNeLoss, dataset_for, evaluate_model, get_backbone,
                        load_collection)
from samtone_tf.resources import scifact_path
from samtone_tf.retrieval.metrics import markdown_table

train, test = load_collection(scifact_path(), "train"), load_collection(scifact_path(), "test")
if SMALL:   # a slice of the corpus keeps the CPU run short
    from samtone_tf.data.common import Collection
    keep = {d for qrels in test.qrels.values() for d in qrels} | set(list(test.corpus)[:300])
    test = Collection({d: test.corpus[d] for d in keep}, test.queries, test.qrels, "test",
                      test.path)

def e5(architecture, rank=None):
    keras.utils.set_random_seed(0)
    return DualEncoder(get_backbone(folder), architecture=architecture, pooling="mean",
                       lora_rank=rank, query_prompt="query: ", document_prompt="passage: ",
                       query_max_length=64, document_max_length=64 if SMALL else 256)

results = {"zero-shot": evaluate_model(e5("sde"), test)[0]}
for architecture in ("sde", "ade-lora"):
    model = e5(architecture, rank=8)
    model.compile(keras.optimizers.Adam(1e-3 if SMALL else 1e-4),
                  loss=SamToNeLoss(0.05, same_tower="query"))
    data = dataset_for(model, train, batch_size=16 if SMALL else 64)
    model.fit(data.take(4) if SMALL else data, epochs=1 if SMALL else 3, verbose=0)
    trainable = sum(int(v.numpy().size) for v in model.trainable_variables)
    total = sum(int(v.numpy().size) for v in model.weights)
    print(f"{architecture}: {trainable:,} of {total:,} weights trained")
    results[f"LoRA-8 {architecture}"] = evaluate_model(model, test)[0]
print(markdown_table(results))"""),
        new_markdown_cell("## Serve it\n\nThe SavedModel holds the base once, the adapters, "
                          "the tokenizer and the prompts: a client sends raw text."),
        new_code_cell(r"""import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401
from samtone_tf import export_saved_model
export_saved_model(model, f"{workdir}/savedmodel")
served = tf.saved_model.load(f"{workdir}/savedmodel")
texts = ["Qu'est-ce que la SamToNe?", "¿Qué proteína se une al receptor?", "東京の病院"]
got = served.signatures["encode_query"](texts=tf.constant(texts))["embeddings"].numpy()
print("served = trained:", np.allclose(got, model.encode_queries(texts), atol=1e-5))"""),
    ]


NOTEBOOKS = {"quickstart.ipynb": quickstart, "distributed_training.ipynb": distributed,
             "reuse_savedmodel.ipynb": reuse, "retrieval.ipynb": retrieval,
             "multilingual_lora.ipynb": multilingual}


def main():
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for name, cells in NOTEBOOKS.items():
        notebook = new_notebook(cells=[badge(name)] + cells(), metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "colab": {"provenance": []}})
        path = os.path.join(here, name)
        if "--execute" in sys.argv:
            from nbclient import NotebookClient

            NotebookClient(notebook, timeout=900, kernel_name="python3",
                           resources={"metadata": {"path": here}}).execute()
        nbformat.write(notebook, path)
        print("wrote", path)


if __name__ == "__main__":
    main()
