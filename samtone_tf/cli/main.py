"""The ``samtone`` command's entry point: parse, cap the heap's arenas, dispatch to the
command's module, and turn user and storage errors into one line (exit code 2).

    samtone train [--config FILE] [--output RUN_DIR] [--set section.key=value ...]
    samtone eval --model DIR --data BEIR_FOLDER [--split test] [--output metrics.json]
    samtone export --checkpoint RUN_DIR --output DIR
    samtone export --pretrained HF_FOLDER --architecture sde --output DIR
    samtone index --model M --data C --output DIR [--quantization none|int8|binary] [--dims D]
    samtone mine --model M --data C --split train --output RUN_FILE --num N --range 0-100
    samtone prepare DATA --output STORE
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import traceback

from samtone_tf.cli.parser import build_parser
from samtone_tf.errors import SamtoneError
from samtone_tf.heap import limit_arenas
from samtone_tf.native_log import native_start_up

# The module and function of each command (imported only when it runs, so that
# ``samtone --help`` starts without TensorFlow).
COMMANDS = {"train": ("train", "train_command"), "eval": ("evaluate", "eval_command"),
            "export": ("export", "export_command"), "index": ("index", "index_command"),
            "mine": ("mine", "mine_command"), "analyze": ("analyze", "analyze_command"),
            "prepare": ("prepare", "prepare_command")}


def _fail(message, debug=False):
    if debug:
        traceback.print_exc()
    message = " ".join(str(message).split())  # one line
    print(f"samtone: error: {message}", file=sys.stderr)
    return 2


def _os_message(error):
    """One line naming the path: read-only, full disk, a folder where a file was
    expected, a file where a folder was expected, a missing file."""
    path = error.filename if error.filename is not None else ""
    if error.filename2 is not None:
        path = f"{path} -> {error.filename2}"
    reason = error.strerror or str(error)
    return f"{path}: {reason}" if path else reason


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    limit_arenas()  # before TensorFlow starts its threads (samtone_tf.heap)
    # TensorFlow's start-up log once (samtone_tf.native_log); --debug shows it as it comes.
    # Parsing is inside the block: reading --set values imports the job's configuration,
    # and with it TensorFlow.
    with native_start_up() if "--debug" not in argv else contextlib.nullcontext():
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is not None:
            import tensorflow  # noqa: F401  (here, for its start-up log)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        module, function = COMMANDS[args.command]
        command = getattr(importlib.import_module(f"samtone_tf.cli.{module}"), function)
        return command(args)
    except OSError as error:  # missing file, read-only, disk full, file vs folder, ...
        return _fail(_os_message(error), args.debug)
    except (SamtoneError, ImportError) as error:  # bad input, a missing optional package
        name = f"{type(error).__name__}: " if isinstance(error, RuntimeError) else ""
        return _fail(f"{name}{error}", args.debug)
    except Exception as error:  # TensorFlow's own file writes: a full or read-only disk
        message = _storage_message(error)
        if message is None:
            raise  # anything else is a bug in samtone_tf: it keeps its traceback (exit 1)
        return _fail(message, args.debug)


# What the operating system says when storage refuses a write; TensorFlow's checkpoint
# and SavedModel writers raise their own error types (ResourceExhaustedError, ...) with it.
_STORAGE = re.compile(r"No space left on device|Read-only file system|Disk quota exceeded|"
                      r"File too large|Permission denied")


def _storage_message(error):
    """One line (the file and the reason) for a TensorFlow error that is the storage
    refusing a write; None for any other error."""
    if not type(error).__module__.startswith("tensorflow"):
        return None
    text = " ".join(str(error).split())
    reason = _STORAGE.search(text)
    if reason is None:
        return None
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\]\s*$", "", text)
    return f"{text} (TensorFlow {type(error).__name__}: {reason.group(0)})"

