"""TensorFlow's native start-up and converter notices, kept off the terminal.

`import tensorflow` prints a few INFO lines from C++ before absl logging is initialised (the
oneDNN notice, the CPU-instructions notice, and a "WARNING: All log messages before
absl::InitializeLog() is called..." banner). TF_CPP_MIN_LOG_LEVEL does not reach them, so the
import runs with file descriptor 2 captured, and every other line is written back unchanged.

The TFLite converter (the LiteRT export) does the same from C++ during each conversion: two
warnings about options the MLIR converter ignores (`tf_tfl_flatbuffer_helpers.cc:364] Ignored
output_format.`, `...:367] Ignored drop_control_dependency.`), and INFO lines of its SavedModel
reader. They are absl log lines: TF_CPP_MIN_LOG_LEVEL=1 (the CLI's) still lets warnings through,
and 2 would hide every other TensorFlow warning too, so the conversion runs inside
`converter_notices_dropped`, which drops exactly these.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "port.cc:",  # oneDNN custom operations are on...
    "cpu_feature_guard.cc:",  # This TensorFlow binary is optimized...
    "To enable the following instructions:",
)

#: The converter's native lines (one set per conversion), all of them about its own plumbing.
CONVERTER_NOISE = (
    "tf_tfl_flatbuffer_helpers.cc:",  # Ignored output_format. / Ignored drop_control_dependency.
    "reader.cc:",  # Reading SavedModel from: /tmp/..., Reading meta graph with tags { serve }
    "loader.cc:",  # Restoring SavedModel bundle. / SavedModel load for tags { serve }: ...
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


def converter_notices_dropped() -> AbstractContextManager[None]:
    """Run a TFLite conversion without the converter's native notices (other lines are kept)."""
    return native_startup_notices_dropped(CONVERTER_NOISE)
