"""Distribution strategies from a string, and global-batch arithmetic.

``get_strategy(spec)`` understands:

* ``"auto"``: TPU when one is configured (``TPU_NAME`` / ``COLAB_TPU_ADDR``),
  multi-worker when ``TF_CONFIG`` names several workers, ``MirroredStrategy``
  over all GPUs when there are several, one GPU when there is one, else the
  default (single-device) strategy;
* ``"default"``: the default strategy (one device);
* ``"cpu:N"``: ``MirroredStrategy`` over N logical CPU devices (tests and demos:
  it behaves like N GPUs, cross-replica negatives included);
* ``"mirrored"``: ``MirroredStrategy`` over all local GPUs;
* ``"multiworker"``: ``MultiWorkerMirroredStrategy`` (reads ``TF_CONFIG``);
* ``"tpu"`` or ``"tpu:NAME"``: ``TPUStrategy``.

The global batch is what the loss sees (all replicas' rows); each replica gets
``global_batch // num_replicas`` rows, so the global batch must divide evenly.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf


def configure_logical_cpus(count: int) -> None:
    """Splits the CPU into ``count`` logical devices (before TF initialises)."""
    if count < 1:
        raise ValueError(f"cpu:N needs N >= 1, got {count}")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as error:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing < count:
            raise RuntimeError(
                f"cannot make {count} logical CPUs: TensorFlow already initialised "
                f"with {existing}. Choose the strategy before any other TensorFlow "
                "work in this process (one strategy size per process).") from error


def get_strategy(spec: str = "auto") -> tf.distribute.Strategy:
    """Returns a ``tf.distribute.Strategy`` for ``spec`` (see the module docstring)."""
    spec = (spec or "auto").strip()
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind == "auto":
        return _auto_strategy()
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "cpu":
        try:
            count = int(arg or "1")
        except ValueError:
            raise ValueError(f"strategy 'cpu:N' needs an integer N, got {spec!r}") from None
        configure_logical_cpus(count)
        devices = [f"/cpu:{i}" for i in range(count)]
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=arg or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"unknown strategy {spec!r}; use auto, default, cpu:N, mirrored, multiworker or tpu")


def _auto_strategy():
    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return get_strategy("tpu:" + os.environ.get("TPU_NAME", ""))
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        return get_strategy("multiworker")
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    return tf.distribute.get_strategy()


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
