"""Resumable training and numeric guards.

:func:`fit_resumable` trains for a fixed number of steps over a deterministic
dataset, checkpointing every ``checkpoint_every`` steps (and at the end) with
``tf.train.CheckpointManager``: model weights, optimizer state (its step counter
included), the dropout seed-generator states, and the number of steps done. Run
again on the same checkpoint folder, it restores the latest checkpoint and skips
the batches already consumed, so that with fixed seeds and deterministic ops a
resumed run ends with the same weights as an uninterrupted one.

A non-finite loss stops training at once with :class:`NonFiniteLossError` naming
the step; the checkpoint for that step is never written, so the last good one stays.
The weights are checked before every save (and by :func:`check_finite_weights`
before any export): a non-finite weight raises :class:`NonFiniteWeightsError`.

A latest checkpoint that cannot be read (truncated, corrupt) is reported by name and
the previous intact one is used. The per-step history (loss and in-batch metrics of
each step) is kept beside the checkpoints, so after a resume it covers the whole run.

Checkpoints are written by TensorFlow's checkpoint manager: the data files first,
then the small ``checkpoint`` index file that points at them, so a kill mid-write
leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from samtone_tf.errors import TrainingStopped
from samtone_tf.files import remove_leftovers, write_json_atomic
from samtone_tf.layers.remat import seed_states
from samtone_tf.numerics import check_finite_weights  # noqa: F401


class NonFiniteLossError(TrainingStopped):
    """The training loss became NaN or Inf."""


class CheckpointError(TrainingStopped):
    """No intact checkpoint could be restored."""


HISTORY = "history.json"


def make_checkpoint(model):
    """A ``tf.train.Checkpoint`` of everything a resumed run needs."""
    with model.distribute_strategy.scope():  # optimizer slots are distributed like weights
        model.optimizer.build(model.trainable_variables)
    steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_done")
    checkpoint = tf.train.Checkpoint(
        weights=[w.value for w in model.weights],
        optimizer_variables=[v.value for v in model.optimizer.variables],
        seed_states=seed_states(model), steps_done=steps_done)
    return checkpoint, steps_done


class _Guard(keras.callbacks.Callback):
    """Raises on a non-finite loss, records each step's logs, checks the weights and
    saves every ``every`` steps (the history first, then the checkpoint)."""

    def __init__(self, manager, steps_done, start, every, history, history_path,
                 on_step=None):
        super().__init__()
        self.manager, self.steps_done, self.start, self.every = manager, steps_done, start, every
        self.history, self.history_path, self.on_step = history, history_path, on_step
        self._means, self._seen = {}, 0

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution = k, Keras calls this once per k steps, ``batch``
        # being the last of them: the record then covers those k steps.
        step = self.start + batch + 1
        previous = self.history["step"][-1] if self.history.get("step") else self.start
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(np.mean(loss))):
            latest = self.manager.latest_checkpoint
            raise NonFiniteLossError(
                f"training loss became {float(np.mean(loss))} at step {step}; stopped. The "
                f"last good checkpoint is {latest or '(none yet)'}")
        self._record(step, batch + 1, logs)
        if self.every and step // self.every > previous // self.every:
            self.save(step)
        if self.on_step is not None:  # after the save: a reported step is durable
            self.on_step(step)

    def _record(self, step, n, logs):
        """Keras logs running means over the fit call; the mean of the steps since the
        last call is (n·mean_n − m·mean_m) / (n − m), so a resumed history equals an
        uninterrupted one."""
        m = self._seen
        self.history.setdefault("step", []).append(step)
        for key, value in logs.items():
            mean = float(np.mean(value))
            own = (n * mean - m * self._means.get(key, 0.0)) / (n - m)
            self._means[key] = mean
            self.history.setdefault(key, []).append(own)
        self._seen = n

    def save(self, step):
        check_finite_weights(self.model, f"step {step}")

        write_json_atomic(self.history_path, self.history)
        self.steps_done.assign(step)
        self.manager.save(checkpoint_number=step)


def fit_resumable(model, dataset, total_steps, checkpoint_dir, checkpoint_every=50,
                  verbose=1, callbacks=(), on_step=None, max_to_keep=2, restore_dir=None,
                  log=print):
    """Trains ``model`` for ``total_steps`` batches of ``dataset`` (which must yield
    the same batches in the same order on every run; a tf.data.Dataset of global
    batches, or a :class:`samtone_tf.training.distribute.PerWorkerInput`), resuming from
    ``checkpoint_dir`` when it holds a checkpoint. Returns the whole run's per-step
    history ({"step": [...], "loss": [...], ...}), the steps before a resume included.

    ``restore_dir`` (default ``checkpoint_dir``) is where an earlier checkpoint is
    looked for: a non-chief worker of a multi-worker job saves into a private folder
    (every worker must take part in a save) but resumes from the chief's checkpoints,
    so all workers restart at the same step (this needs a filesystem they share).
    A resume is reported through ``log``."""
    # Absolute, so that the checkpoint index names the same files from any working
    # directory (a relative folder was once joined to itself on resume).
    checkpoint_dir = os.path.abspath(checkpoint_dir)
    restore_dir = restore_dir and os.path.abspath(restore_dir)
    remove_leftovers(checkpoint_dir, log)
    checkpoint, steps_done = make_checkpoint(model)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=max_to_keep)
    source = restore_dir or checkpoint_dir
    latest = restore_latest(checkpoint, source, log)
    start = int(steps_done.numpy())
    if start > total_steps:
        raise CheckpointError(f"{checkpoint_dir} holds {start} steps, more than the {total_steps} "
                         "this run asks for: a different run's checkpoints?")
    history = _load_history(os.path.join(source, HISTORY), start)
    if start == total_steps:
        return history
    if start:
        log(f"resuming from {latest} (step {start} of {total_steps})")
    guard = _Guard(manager, steps_done, start, checkpoint_every, history,
                   os.path.join(checkpoint_dir, HISTORY), on_step)
    steps = None
    if hasattr(dataset, "distribute"):  # built per worker (PerWorkerInput)
        window = dataset.distribute(model.distribute_strategy, start, total_steps - start)
        # told, not inferred: its cardinality is unknown, and fit running to the end of
        # the data counted one optimizer step more than it trained (2 local replicas)
        steps = total_steps - start
    else:
        window = dataset.skip(start).take(total_steps - start)
    model.fit(window, epochs=1, shuffle=False, steps_per_epoch=steps,
              verbose=verbose, callbacks=[guard, *callbacks])  # the dataset shuffles
    check_finite_weights(model, f"after the last update (step {total_steps})")
    if int(steps_done.numpy()) != total_steps:
        guard.save(total_steps)
    return history


def _load_history(path, steps):
    """The saved per-step history cut at ``steps`` (a checkpoint older than the
    history, e.g. after falling back from a corrupt one, drops the later steps)."""
    if not steps or not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        saved = json.load(handle)
    keep = sum(1 for step in saved.get("step", []) if step <= steps)
    return {key: values[:keep] for key, values in saved.items()}


def checkpoint_paths(checkpoint_dir):
    """The checkpoints listed in ``checkpoint_dir``'s index, oldest first."""
    if not os.path.isdir(checkpoint_dir):
        return []
    # TensorFlow resolves the index's relative names against checkpoint_dir itself.
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    if state is None:
        return []
    return list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]


def restore_latest(checkpoint, checkpoint_dir, log=print):
    """Restores the newest intact checkpoint of ``checkpoint_dir``; returns its path
    (None when there is none). An unreadable one is reported by name and skipped."""
    paths = checkpoint_paths(checkpoint_dir)
    for path in reversed(paths):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
            return path
        except (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError,
                OSError) as error:  # what a truncated or corrupt file raises
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            log(f"warning: checkpoint {path} is unreadable ({type(error).__name__}: {reason}); "
                "trying the previous one")
    if paths:
        raise CheckpointError(f"{checkpoint_dir}: no intact checkpoint among "
                              f"{', '.join(os.path.basename(p) for p in paths)}")
    return None
