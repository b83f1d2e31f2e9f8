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




class PerWorkerInput:
    """Training input built once per input pipeline (one per worker) by
    ``strategy.distribute_datasets_from_function``: ``make(share)`` returns the global
    batches' tf.data pipeline restricted to ``share`` = (index, count), i.e. the rows of
    each global batch this worker's replicas train on
    (:func:`samtone_tf.data.batches.share_rows`), so each worker fetches and tokenizes
    only its own rows; they are then cut into per-replica batches (``Dataset.rebatch``),
    in replica order. Each replica sees the rows that ``experimental_distribute_dataset``
    would give it from the whole global batch (test_distribute), but no worker builds
    the others' rows, as it did under auto-sharding by data."""

    def __init__(self, make, global_batch_size):
        self.make, self.global_batch_size = make, int(global_batch_size)

    def distribute(self, strategy, start=0, count=None):
        """The distributed dataset of global batches ``start`` .. ``start + count``."""

        def dataset_fn(context):
            share = (context.input_pipeline_id, context.num_input_pipelines)
            dataset = self.make(share if share[1] > 1 else None).skip(start)
            if count is not None:
                dataset = dataset.take(count)
            return dataset.rebatch(context.get_per_replica_batch_size(self.global_batch_size),
                                   drop_remainder=True)

        return strategy.distribute_datasets_from_function(dataset_fn)
