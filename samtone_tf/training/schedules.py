"""Learning-rate schedules."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="samtone_tf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup`` steps, then linear decay to
    0 at ``total`` steps (sentence-transformers' WarmupLinear)."""

    def __init__(self, peak, total, warmup):
        self.peak, self.total, self.warmup = float(peak), int(total), int(warmup)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = (step + 1.0) / max(self.warmup, 1)
        decay = (self.total - step) / max(self.total - self.warmup, 1)
        factor = tf.where(step < self.warmup, warm, decay)
        return self.peak * tf.clip_by_value(factor, 0.0, 1.0)

    def get_config(self):
        return {"peak": self.peak, "total": self.total, "warmup": self.warmup}
