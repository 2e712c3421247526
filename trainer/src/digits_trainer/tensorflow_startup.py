"""TensorFlow's native start-up notices, kept off the terminal.

`import tensorflow` prints a few INFO lines from C++ before absl logging is initialised (the
oneDNN notice, the CPU-instructions notice, and a "WARNING: All log messages before
absl::InitializeLog() is called..." banner). TF_CPP_MIN_LOG_LEVEL does not reach them, so the
import runs with file descriptor 2 captured, and every other line is written back unchanged.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "port.cc:",  # oneDNN custom operations are on...
    "cpu_feature_guard.cc:",  # This TensorFlow binary is optimized...
    "To enable the following instructions:",
)


@contextmanager
def native_startup_notices_dropped(noise: tuple[str, ...] = STARTUP_NOISE) -> Iterator[None]:
    """Run the block with fd 2 captured; afterwards write back every line that is not `noise`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(True)
                    if not any(marker in line for marker in noise)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def import_tensorflow_quietly() -> None:
    """Import TensorFlow once, without its native start-up notices (later imports are free)."""
    with native_startup_notices_dropped():
        import tensorflow  # noqa: F401
