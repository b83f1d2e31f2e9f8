"""TensorFlow's native start-up log, captured and written back once (samtone_tf.native_log).

The reference is TensorFlow itself: a fresh ``import tensorflow`` + GPU lookup, run with
and without the filter, in child processes."""

import subprocess
import sys

import tensorflow as tf

from samtone_tf.native_log import filter_native_lines

SAMPLE = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796656363.260777   18282 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796656363.261195   18282 cudart_stub.cc:31] Could not find cuda drivers.
a line of our own
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796656365.707993   18282 port.cc:153] oneDNN custom operations are on.
E0000 00:00:1796656367.225975   18282 cuda_platform.cc:52] failed call to cuInit: UNKNOWN
a line of our own
2026-12-07 15:38:34.727339: E external/local_xla/cuda_platform.cc:51] failed call to cuInit: X
"""


def test_each_native_message_once_the_dropped_ones_out_other_lines_as_they_are():
    kept = filter_native_lines(SAMPLE, drop=("failed call to cuInit",)).splitlines()
    assert kept == SAMPLE.splitlines()[:4] + ["a line of our own"]
    assert "failed call to cuInit" in filter_native_lines(SAMPLE)  # kept unless dropped


def _child(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300).stderr


def test_start_up_log_written_back_once_and_everything_after_passes():
    raw = _child("import tensorflow as tf; tf.config.list_physical_devices('GPU')")
    filtered = _child("import sys; from samtone_tf.native_log import native_start_up\n"
                      "with native_start_up():\n    import tensorflow\n"
                      "print('after', file=sys.stderr)")
    gpu = bool(tf.config.list_physical_devices("GPU"))
    expected = filter_native_lines(raw, drop=() if gpu else ("failed call to cuInit",))
    strip = lambda text: [line.split("]", 1)[-1] for line in text.splitlines()]  # no times
    assert strip(filtered) == strip(expected) + ["after"]
    assert len(strip(filtered)) < len(strip(raw)) + 1  # TensorFlow 2.21 logs it twice
