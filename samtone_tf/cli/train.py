"""The ``samtone train`` command."""

from __future__ import annotations

import datetime
import os

from samtone_tf.runs.config import load_config
from samtone_tf.runs.job import run_training


def train_command(args):
    overrides = dict(args.overrides)
    overrides.update({k: v for k, v in vars(args).items() if "." in k and v is not None})
    config = load_config(args.config, overrides)  # validated before any training
    output = args.output or os.path.join(
        "runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))

    run_training(config, output, verbose=0 if args.quiet else 1)
    return 0
