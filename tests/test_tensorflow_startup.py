"""TensorFlow's native start-up notices are dropped, everything else written to stderr is kept
(the server's and the trainer's copies of the helper alike)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import os
from {module} import import_tensorflow_quietly, native_startup_notices_dropped
with native_startup_notices_dropped():
    os.write(2, b"a line of our own\\n")
import_tensorflow_quietly()
import tensorflow as tf
print(int(tf.constant(1) + 1))
"""


@pytest.mark.parametrize("module", ["digits_server.core.tensorflow_startup", "digits_trainer.tensorflow_startup"])
def test_import_drops_the_native_notices_and_keeps_other_lines(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD.format(module=module)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    assert "a line of our own" in done.stderr
    for notice in ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations"):
        assert notice not in done.stderr, done.stderr


def test_without_the_helper_tensorflow_prints_the_notices() -> None:
    """The notices exist here: without this the test above could not fail."""
    done = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, timeout=120)
    assert "absl::InitializeLog" in done.stderr or "cpu_feature_guard" in done.stderr, done.stderr
