"""``samtone train``: config → data → model → zero-shot eval → fit → eval → export.

The run folder holds ``config.yaml``, ``checkpoints/`` (resumable checkpoints and
``final.weights.h5``), ``logs/`` (TensorBoard), ``history.json``, ``plots/`` (t-SNE of
both towers with the linear-probe number, similarity histograms), ``metrics.json`` ({"zero_shot": ...,
"fine_tuned": ...}, each the object ``samtone eval`` writes) and ``savedmodel/``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

from samtone_tf.data.loaders import load_collection
from samtone_tf.data.pipeline import examples_from_qrels, training_dataset
from samtone_tf.data.store import default_store_path
from samtone_tf.data.streaming import example_columns
from samtone_tf.data.runs import mine_hard_negatives, read_trec_run
from samtone_tf.devices import is_chief, task_name
from samtone_tf.errors import ConfigError
from samtone_tf.export.saved_model import export_saved_model
from samtone_tf.files import (atomic_path, check_output, remove_leftovers, write_json_atomic,
                              write_text_atomic)
from samtone_tf.heap import collect, trim
from samtone_tf.losses.samtone import SamToNeLoss
from samtone_tf.models.architectures import own_max_length
from samtone_tf.models import get_backbone
from samtone_tf.models.dual_encoder import DualEncoder
from samtone_tf.resources import scifact_path
from samtone_tf.retrieval.bm25 import bm25_hard_negatives
from samtone_tf.retrieval.evaluation import evaluate_model
from samtone_tf.retrieval.metrics import markdown_table
from samtone_tf.runs.config import dump, load_config, validate
from samtone_tf.runs.folder import RunFolderError, check_usable, claim
from samtone_tf.runs.memory import memory_options, release_optimizer_state, release_training_memory
from samtone_tf.runs.plots import write_plots
from samtone_tf.tokenizers.prompted import with_prompt
from samtone_tf.training.alignment import sample_pairs
from samtone_tf.training.callbacks import TowerAlignment
from samtone_tf.training.distribute import PerWorkerInput, get_strategy
from samtone_tf.training.resumable import fit_resumable
from samtone_tf.training.schedules import WarmupLinearDecay


def build_model(config, strategy, total_steps=1, log=print, backbone=None, padding=None):
    """The job's compiled DualEncoder: dtype policy ``training.mixed_precision``, XLA
    ``training.jit_compile`` for the train step (Keras' own "auto") and for encoding,
    ``training.steps_per_execution``, ``training.remat`` and
    ``training.gradient_cache_chunk_size`` (:func:`memory_options`), ``data.padding``
    (or ``padding``)."""
    model_cfg, loss_cfg, training = config["model"], config["loss"], config["training"]
    backbone = backbone or get_backbone(model_cfg["tower"], log)
    remat, chunk = memory_options(training, strategy, log)
    with strategy.scope():
        try:  # DualEncoder validates its own arguments; the config layer names the section
            model = DualEncoder(backbone, architecture=model_cfg["architecture"],
                                pooling=model_cfg["pooling"],
                                projection_dim=model_cfg["projection_dim"],
                                query_max_length=model_cfg["query_max_length"],
                                document_max_length=model_cfg["document_max_length"],
                                padding=padding or config["data"]["padding"],
                                encode_jit_compile=training["jit_compile"],
                                dtype=training["mixed_precision"],
                                remat=remat, query_prompt=model_cfg["query_prompt"] or "",
                                document_prompt=model_cfg["document_prompt"] or "",
                                lora_rank=model_cfg["lora_rank"],
                                lora_alpha=model_cfg["lora_alpha"])
        except ValueError as error:
            raise ConfigError(f"model.{error}") from error
        schedule = WarmupLinearDecay(training["learning_rate"], total_steps,
                                     int(training["warmup_ratio"] * total_steps))
        model.compile(keras.optimizers.Adam(schedule), loss=SamToNeLoss(**loss_cfg),
                      gradient_cache_chunk_size=chunk,
                      jit_compile=training["jit_compile"],
                      steps_per_execution=training["steps_per_execution"])
    return model


def run_training(config, output, verbose=1, log=print):
    """Runs the whole job; returns the metrics dict written to metrics.json.

    ``output`` must be new, empty or a samtone run folder (see
    :mod:`samtone_tf.runs.folder`); nothing is written before the configuration, the
    data and the model have all been checked, and a live run holds the folder's lock.

    Under a multi-worker strategy every worker runs this with the same ``output``:
    all train, only the chief evaluates, exports and writes ``output``; the others
    return ``{"chief": False, "task": ..., "steps": ..., "wall_time_s": ...}``.
    Resuming an interrupted multi-worker run needs ``output`` on a filesystem all
    workers share (they restart from the chief's checkpoints)."""
    started = time.time()
    try:
        strategy = get_strategy(config["training"]["strategy"])
    except ValueError as error:
        raise ConfigError(f"training.strategy: {error}") from error
    validate(config, replicas=strategy.num_replicas_in_sync)
    chief, task = is_chief(strategy), task_name(strategy)
    inputs = [config["data"]["path"], config["model"]["tower"], config["data"]["hard_negatives"],
              config["data"]["triples"]]
    check_output(output, [path for path in inputs if path and os.path.exists(path)])
    if chief and check_usable(output):  # writes nothing; refuses a foreign folder
        if os.path.exists(os.path.join(output, "metrics.json")):
            raise FileExistsError(f"{output} already holds a finished run (metrics.json); "
                                  "choose another --output")
        _check_same_config(output, config)
    elif not chief:
        _check_same_config(output, config)
    keras.utils.set_random_seed(config["training"]["seed"])

    data_path = config["data"]["path"] or scifact_path()
    data_format = config["data"]["format"]
    train_set = load_collection(data_path, config["data"]["train_split"], data_format)
    eval_set = load_collection(data_path, config["data"]["eval_split"], data_format)
    examples = training_examples(config, train_set)
    log(f"data: {data_path} — {len(examples)} training pairs ({config['data']['train_split']}), "
        f"{len(eval_set.queries)} evaluation queries ({config['data']['eval_split']}), "
        f"{len(eval_set.corpus)} documents")

    training, model_cfg = config["training"], config["model"]
    padding = config["data"]["padding"]
    if padding == "dynamic" and isinstance(strategy, tf.distribute.TPUStrategy):
        padding = "buckets"
        log("data.padding: dynamic → buckets on TPU (a TPU compiles one program per shape)")
    backbone = get_backbone(model_cfg["tower"], log)
    query_length = model_cfg["query_max_length"] or own_max_length(backbone)
    document_length = model_cfg["document_max_length"] or own_max_length(backbone)
    make_dataset = functools.partial(
        training_dataset, examples,  # the model's tokenizers, before the model exists
        with_prompt(backbone.make_tokenizer(query_length), model_cfg["query_prompt"] or ""),
        with_prompt(backbone.make_tokenizer(document_length),
                    model_cfg["document_prompt"] or ""),
        training["global_batch_size"], seed=training["seed"], epochs=training["epochs"],
        padding=padding)
    dataset = make_dataset()
    steps = int(dataset.cardinality())  # full batches over all epochs, known without a pass
    if training["steps"]:
        steps = min(steps, training["steps"])
    if strategy.num_replicas_in_sync > 1:  # each worker builds only its replicas' rows
        dataset = PerWorkerInput(lambda share: make_dataset(share=share),
                                 training["global_batch_size"])
    model = build_model(config, strategy, steps, log, backbone=backbone, padding=padding)
    trim()  # the weights file's copies, freed once loaded (samtone_tf.heap)
    log(f"model: {model.backbone!r}, architecture {model.architecture}, "
        f"{strategy.num_replicas_in_sync} replica(s), max lengths query "
        f"{model.query_max_length} / document {model.document_max_length}")
    with contextlib.ExitStack() as stack:
        if chief:  # the first write: manifest, lock, config
            stack.callback(_claim(output, config, log).release)
        return _train_and_report(config, output, model, dataset, steps, eval_set, data_path,
                                 chief, task, started, verbose, log)


def training_examples(config, train_set):
    """The job's (query, positive[, hard negatives]) examples of ``train_set``:
    ``data.num_hard_negatives`` per example from ``data.hard_negatives`` (BM25's top
    100, or a TREC run), judged positives excluded; queries with fewer are skipped
    (:func:`samtone_tf.data.pipeline.examples_from_qrels`)."""
    num = config["data"]["num_hard_negatives"]
    if config["data"]["triples"]:  # MS MARCO id triples, memory-mapped beside the store
        from samtone_tf.data.triples import triple_columns

        store = getattr(train_set.corpus, "store", None)
        cache = os.path.join(store, "triples") if store else os.path.join(
            default_store_path(train_set.path), "triples")
        return triple_columns(config["data"]["triples"], train_set, cache, num == 1)
    negatives = None
    if num:
        source = config["data"]["hard_negatives"]
        negatives = (bm25_hard_negatives(train_set, num, depth=100) if source == "bm25" else
                     mine_hard_negatives(read_trec_run(source), train_set.qrels, num))
    if hasattr(train_set.corpus, "rows_of"):  # a stored corpus: rows, texts per batch
        return example_columns(train_set, negatives, num)
    return examples_from_qrels(train_set, negatives, num)


def _check_same_config(output, config):
    """True when ``output`` holds this job's config.yaml; raises if another job's."""
    config_path = os.path.join(output, "config.yaml")
    if not os.path.exists(config_path):
        return False
    with open(config_path, encoding="utf-8") as handle:
        if handle.read() != dump(config):
            raise RunFolderError(f"{output} holds an interrupted run with another "
                             f"configuration ({config_path}); use another --output")
    return True


def _claim(output, config, log):
    """Manifest + lock, leftovers of interrupted writes removed, config written or
    matched (under the lock, so two starts cannot both write it)."""
    lock = claim(output)
    try:
        for folder in (output, os.path.join(output, "checkpoints")):
            remove_leftovers(folder, log)
        if _check_same_config(output, config):
            log(f"resuming the interrupted run in {output}")
        else:
            write_text_atomic(os.path.join(output, "config.yaml"), dump(config))
    except BaseException:
        lock.release()
        raise
    return lock


def _train_and_report(config, output, model, dataset, steps, eval_set, data_path, chief, task,
                      started, verbose, log):
    training, evaluation = config["training"], config["evaluation"]
    # Every worker of a multi-worker job trains (and takes part in each checkpoint
    # save); only the chief writes the run folder. The others save into a private
    # folder, removed when training ends, and resume from the chief's checkpoints.
    write_dir = output
    if not chief:
        write_dir = tempfile.mkdtemp(prefix=f"samtone-{task}-")
        log(f"{task} is not the chief: it trains and then stops; the run folder "
            f"{output} is written by the chief (private checkpoints in {write_dir})")

    def evaluate(name):
        log(f"evaluating ({name}) on {config['data']['eval_split']} ...")
        summary, _, _ = evaluate_model(model, eval_set, k=evaluation["k"],
                                       batch_size=evaluation["batch_size"],
                                       ignore_identical_ids=config["data"]["ignore_identical_ids"],
                                       progress=verbose > 0)
        summary.update(data=data_path, split=config["data"]["eval_split"])
        return summary

    metrics = {}
    zero_shot_path = os.path.join(output, "zero_shot.json")
    if evaluation["zero_shot"] and chief:
        if os.path.exists(zero_shot_path):  # written by this run before an interruption
            with open(zero_shot_path, encoding="utf-8") as handle:
                metrics["zero_shot"] = json.load(handle)
        else:
            metrics["zero_shot"] = evaluate("zero-shot")
            write_json_atomic(zero_shot_path, metrics["zero_shot"])
            # The evaluation's traced encode functions and freed blocks, before training
            # (a later encode traces again, once per side).
            model.release_encode_functions()
            collect()

    every = training["checkpoint_every"]
    saves = (f"checkpoints every {every} steps and after the last" if steps > every
             else "a checkpoint after the last step")
    log(f"training: {steps} steps of global batch {training['global_batch_size']}, "
        f"{saves} in {write_dir}/checkpoints")
    callbacks = [keras.callbacks.TensorBoard(os.path.join(write_dir, "logs"))]
    alignment = _alignment_callback(config, eval_set, write_dir) if chief else None
    if alignment is not None:
        callbacks.append(alignment)
    history = fit_resumable(
        model, dataset, steps, os.path.join(write_dir, "checkpoints"),
        checkpoint_every=training["checkpoint_every"], verbose=verbose,
        callbacks=callbacks,
        restore_dir=None if chief else os.path.join(output, "checkpoints"), log=log)
    if alignment is not None:
        history["alignment_step"] = alignment.history["step"]
        history.update({k: v for k, v in alignment.history.items() if k != "step"})
        if alignment.seconds:
            log(f"tower alignment: {len(alignment.seconds)} measurements, "
                f"{sum(alignment.seconds) / len(alignment.seconds):.1f} s each")
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        log(f"{task}: training done ({steps} steps)")
        return {"chief": False, "task": task, "steps": steps,
                "wall_time_s": round(time.time() - started, 1)}
    # Released before the weights file is written: Keras copies every weight to NumPy
    # there, which on top of the training step's heap raised a process' peak by 0.09 GB
    # (docs/RESULTS.md).
    release_training_memory(model)
    with atomic_path(os.path.join(output, "checkpoints", "final.weights.h5"),
                     suffix=".weights.h5") as temporary:
        model.save_weights(temporary)
    write_json_atomic(os.path.join(output, "history.json"), history)
    release_optimizer_state(model)  # the job trains no more; its checkpoints keep the state
    # Exported before the fine-tuned evaluation, and its garbage freed (0.15 GB that the
    # trim returns): exported last, it sat on the evaluation's buffers (with the release
    # of the zero-shot encode functions, the job's peak 2.40 -> 2.13 GB; docs/RESULTS.md).
    log(f"exporting the SavedModel to {os.path.join(output, 'savedmodel')} ...")
    export_saved_model(model, os.path.join(output, "savedmodel"),
                       training_config=config.to_dict(),
                       overwrite=True)  # ours: the folder has the manifest and our lock
    collect()
    metrics["fine_tuned"] = evaluate("fine-tuned")
    write_plots(model, eval_set, os.path.join(output, "plots"), training["seed"],
                batch_size=evaluation["batch_size"])
    metrics["wall_time_s"] = round(time.time() - started, 1)
    write_json_atomic(os.path.join(output, "metrics.json"), metrics)
    rows = {name: metrics[name] for name in ("zero_shot", "fine_tuned") if name in metrics}
    log("\n" + markdown_table(rows, keys=("ndcg@10", "mrr@10", "p@1", "recall@100")))
    log(f"\nrun folder: {output} (wall time {metrics['wall_time_s']} s)")
    sys.stdout.flush()
    return metrics


def _alignment_callback(config, eval_set, write_dir):
    """TowerAlignment on held-out evaluation pairs when analysis.every_steps is set."""
    analysis = config["analysis"]
    if not analysis["every_steps"]:
        return None
    pairs = sample_pairs(eval_set, analysis["pairs"], config["training"]["seed"])
    if len(pairs) < 10:
        raise ConfigError(f"analysis.every_steps needs >= 10 judged evaluation pairs; "
                          f"{config['data']['eval_split']} has {len(pairs)}")
    return TowerAlignment(pairs, analysis["every_steps"],
                          log_dir=os.path.join(write_dir, "logs", "alignment"),
                          path=os.path.join(write_dir, "checkpoints", "alignment.json"),
                          tsne=analysis["tsne"], seed=config["training"]["seed"])


def load_run_model(run_dir):
    """Rebuilds a trained DualEncoder from a run folder (config + final weights)."""
    config = load_config(os.path.join(run_dir, "config.yaml"))
    config.training.strategy = "default"
    model = build_model(config, get_strategy("default"), log=lambda *a: None)
    model.optimizer.build(model.trainable_variables)  # the file holds its state too
    model.load_weights(os.path.join(run_dir, "checkpoints", "final.weights.h5"))
    return model, config
