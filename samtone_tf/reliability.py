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

Checkpoints are written by TensorFlow's checkpoint manager: the data files first,
then the small ``checkpoint`` index file that points at them, so a kill mid-write
leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import math
import os

import keras
import tensorflow as tf


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


def _seed_states(model):
    weights = {id(w) for w in model.weights}
    return [v.value if hasattr(v, "value") else v for v in model.variables
            if id(v) not in weights]


def make_checkpoint(model):
    """A ``tf.train.Checkpoint`` of everything a resumed run needs."""
    with model.distribute_strategy.scope():  # optimizer slots are distributed like weights
        model.optimizer.build(model.trainable_variables)
    steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_done")
    checkpoint = tf.train.Checkpoint(
        weights=[w.value for w in model.weights],
        optimizer_variables=[v.value for v in model.optimizer.variables],
        seed_states=_seed_states(model), steps_done=steps_done)
    return checkpoint, steps_done


class _Guard(keras.callbacks.Callback):
    """Raises on a non-finite loss, else saves every ``every`` steps."""

    def __init__(self, manager, steps_done, start, every, on_step=None):
        super().__init__()
        self.manager, self.steps_done, self.start, self.every = manager, steps_done, start, every
        self.on_step = on_step

    def on_train_batch_end(self, batch, logs=None):
        step = self.start + batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            latest = self.manager.latest_checkpoint
            raise NonFiniteLossError(
                f"training loss became {float(loss)} at step {step}; stopped. The last "
                f"good checkpoint is {latest or '(none yet)'}")
        if self.on_step is not None:
            self.on_step(step)
        if self.every and step % self.every == 0:
            self.steps_done.assign(step)
            self.manager.save(checkpoint_number=step)


def fit_resumable(model, dataset, total_steps, checkpoint_dir, checkpoint_every=50,
                  verbose=1, callbacks=(), on_step=None, max_to_keep=2, restore_dir=None,
                  log=print):
    """Trains ``model`` for ``total_steps`` batches of ``dataset`` (which must yield
    the same batches in the same order on every run), resuming from
    ``checkpoint_dir`` when it holds a checkpoint. Returns the Keras History
    (None when the run was already complete).

    ``restore_dir`` (default ``checkpoint_dir``) is where an earlier checkpoint is
    looked for: a non-chief worker of a multi-worker job saves into a private folder
    (every worker must take part in a save) but resumes from the chief's checkpoints,
    so all workers restart at the same step (this needs a filesystem they share).
    A resume is reported through ``log``."""
    checkpoint, steps_done = make_checkpoint(model)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=max_to_keep)
    latest = _latest_checkpoint(restore_dir or checkpoint_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    start = int(steps_done.numpy())
    if start > total_steps:
        raise ValueError(f"{checkpoint_dir} holds {start} steps, more than the {total_steps} "
                         "this run asks for: a different run's checkpoints?")
    if start == total_steps:
        return None
    if start:
        log(f"resuming from {latest} (step {start} of {total_steps})")
    guard = _Guard(manager, steps_done, start, checkpoint_every, on_step)
    history = model.fit(dataset.skip(start).take(total_steps - start), epochs=1,
                        verbose=verbose, callbacks=[guard, *callbacks])
    steps_done.assign(total_steps)
    manager.save(checkpoint_number=total_steps)
    return history


def _latest_checkpoint(checkpoint_dir):
    """Path of the latest checkpoint in ``checkpoint_dir``; None when none or no folder."""
    return tf.train.latest_checkpoint(checkpoint_dir) if os.path.isdir(checkpoint_dir) else None


def latest_step(checkpoint_dir):
    """The step of the latest checkpoint in ``checkpoint_dir`` (0 when none)."""
    path = _latest_checkpoint(checkpoint_dir)
    return 0 if path is None else int(path.rsplit("-", 1)[1])
