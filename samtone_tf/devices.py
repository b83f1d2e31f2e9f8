"""What this process runs on and its place in a cluster: accelerator present, multi-worker
mode, chief, task name, its share of a corpus encoding, and the Keras version shim.

A foundation module (every layer may import it): the model's "auto" choices and the
retrieval's encoding roles read it, while :mod:`samtone_tf.training.distribute` makes
the strategies.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf


def keras_symbolic_build_shim_needed() -> bool:
    """Whether DualEncoder applies its MultiWorkerMirroredStrategy shim.

    Keras 3 (seen on 3.15.1, keras-team/keras#20585) breaks ``fit`` under
    ``MultiWorkerMirroredStrategy`` twice: (1) before training it reduces the first
    distributed batch with ``strategy.reduce("MEAN", ...)`` to build the model
    symbolically, which fails on nested dict batches of int tensors; (2) it reduces
    each step's outputs with ``strategy.reduce("MEAN", v, axis=0)``, which fails on
    the scalar metrics a train step returns. The shim (in DualEncoder) builds only
    the optimizer (every variable exists since ``__init__``) and returns [1]-shaped
    step outputs under a multi-worker strategy. Remove it, and this function, once
    the Keras pin is a release where tests/test_multiworker.py passes without it.
    """
    import keras
    from packaging.version import Version

    return Version(keras.__version__) < Version("3.16")


def has_accelerator() -> bool:
    """Whether this process sees a GPU or TPU (logical devices): the one test behind the
    "auto" choices that differ between accelerators and CPU-only machines (encoding's
    XLA, the job's low-memory step)."""
    return any(d.device_type in ("GPU", "TPU") for d in tf.config.list_logical_devices())


def in_multi_worker_mode(strategy=None) -> bool:
    strategy = strategy or tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode())


def is_chief(strategy=None) -> bool:
    """Whether this process writes the job's outputs: always outside multi-worker
    mode; under ``MultiWorkerMirroredStrategy`` the ``chief`` task, or worker 0 when
    the cluster has no chief (TensorFlow's convention, ``extended.should_checkpoint``)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not in_multi_worker_mode(strategy):
        return True
    return bool(strategy.extended.should_checkpoint)


def task_name(strategy=None) -> str:
    """``"<task type>-<index>"`` of this process in a multi-worker cluster, else ``"local"``."""
    strategy = strategy or tf.distribute.get_strategy()
    if not in_multi_worker_mode(strategy):
        return "local"
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type}-{resolver.task_id}"


def encoding_role(tf_config=None):
    """(slot, slots, name) of this process for splitting corpus encoding across a
    cluster, from ``TF_CONFIG`` (the variable MultiWorkerMirroredStrategy reads; no
    strategy or connection is made): the ``chief`` task, then the ``worker`` tasks
    in index order, are slots 0..slots-1; slot 0 is the chief that assembles (TensorFlow's
    convention: the chief task, or worker 0 when there is none). Without ``TF_CONFIG``
    (or with one task): ``(0, 1, "local")``. Other task types (``ps``, ``evaluator``)
    encode nothing: ValueError."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    config = json.loads(raw or "{}") if isinstance(raw, str) else raw
    cluster, task = config.get("cluster", {}), config.get("task", {})
    slots = [("chief", i) for i in range(len(cluster.get("chief", [])))]
    slots += [("worker", i) for i in range(len(cluster.get("worker", [])))]
    if len(slots) <= 1 or not task:
        return 0, 1, "local"
    me = (task.get("type"), int(task.get("index", 0)))
    if me not in slots:
        raise ValueError(f"TF_CONFIG task {me[0]}-{me[1]} is not a chief or worker of the "
                         f"cluster ({len(slots)} of them); it has no share of the corpus")
    return slots.index(me), len(slots), f"{me[0]}-{me[1]}"
