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


CONVERT = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"  # what digits-train (make demo) sets
from digits_trainer.tensorflow_startup import import_tensorflow_quietly
import_tensorflow_quietly()
import tensorflow as tf
from digits_trainer import litert
from digits_trainer.model import build_model
model = build_model("rnn", units=4)
if {bare}:  # the same export without the helper
    import contextlib
    litert.converter_notices_dropped = contextlib.nullcontext
print(len(litert.tflite_bytes(model)) > 0 and len(litert.tflite_batch_bytes(model)) > 0)
"""


@pytest.mark.parametrize("bare", [False, True], ids=["trainer-export", "without-the-helper"])
def test_the_litert_export_prints_no_tensorflow_line(bare: bool) -> None:
    """`make demo` printed `tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.` and `Ignored
    drop_control_dependency.` at each LiteRT export; the trainer's export prints nothing from
    TensorFlow (an absl line starts W0000/I0000/E0000), while the same export without the helper does
    (the test can fail)."""
    done = subprocess.run([sys.executable, "-c", CONVERT.format(bare=bare)], capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    tensorflow_lines = [line for line in done.stderr.splitlines() if line[:1] in "WIEF" and line[1:5] == "0000"]
    if bare:
        assert any("tf_tfl_flatbuffer_helpers.cc" in line for line in tensorflow_lines), done.stderr
    else:
        assert tensorflow_lines == [], done.stderr


def test_a_server_serving_litert_prints_no_tensorflow_line(model_repo) -> None:
    """`make demo`'s server printed LiteRT's `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`
    (once per process, from C++, at the first interpreter), and TensorFlow's start-up notices when its
    first TF Serving REST call imported TensorFlow on demand (`make demo` ends with such a curl);
    the server's log has no TensorFlow line."""
    import json
    import urllib.request

    import numpy as np

    from digits import DigitsClient
    from tests.serverproc import start_server

    server = start_server(model_repo, "--poll-seconds", "0", "--http-port", "0")
    try:
        with DigitsClient(server.target, timeout=60) as client:
            for cell in ("rnn", "lstm", "gru"):
                assert client.classify(np.zeros((28, 28), np.uint8), cell).model == cell
        with urllib.request.urlopen(f"{server.http_url}/v1/models/lstm", timeout=120) as answer:  # imports TF
            assert json.load(answer)["model_version_status"][0]["state"] == "AVAILABLE"
        log = server.log()
    finally:
        assert server.stop() == 0, server.log()
    assert "is available" in log  # the log is the server's, written back after the first load
    noise = [line for line in log.splitlines()
             if "TensorFlow Lite" in line or (line[:1] in "WIEF" and line[1:5] == "0000")]
    assert noise == [], log
