"""The serving runtimes (XLA buckets, LiteRT at batch 1) against the SavedModel, the source of truth.
The XLA tests use `xla_repo`: versions without the dynamic-batch LiteRT file (see test_litert_batches)."""

from __future__ import annotations

import logging
import platform
import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core.loaded_model import OUTPUT_NAME, LoadedModel, check_runtime, return_free_heap
from digits_server.core.runtimes import TFLITE_FILE, XlaBuckets, parse_buckets
from tests.modelrepo import loaded_version
from tests.serverproc import start_server

CELLS = ("rnn", "lstm", "gru")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def lite_repo(xla_repo: Path) -> Path:
    """Versions with a SavedModel and its batch-1 LiteRT export in assets.extra/ (no batch export)."""
    for cell in CELLS:
        assert (xla_repo / cell / "1" / TFLITE_FILE).is_file()
    return xla_repo




@pytest.mark.parametrize("cell", CELLS)
def test_auto_runtime_matches_the_savedmodel_at_every_batch_size(
    lite_repo: Path, digits: np.ndarray, cell: str
) -> None:
    model = loaded_version(lite_repo / cell / "1", "auto")
    assert model.runtime == "savedmodel+tflite+xla"
    reference = model.reference(digits)
    singles = np.concatenate([model.predict(digits[i : i + 1]) for i in range(100)])
    np.testing.assert_allclose(singles, reference[:100], atol=TOLERANCE, rtol=0)
    # 3 pads to bucket 4, 16 fits exactly, 37 is cut into chunks of the largest bucket
    start = 0
    for size in (3, 16, 37, 2, 1):
        np.testing.assert_allclose(
            model.predict(digits[start : start + size]), reference[start : start + size], atol=TOLERANCE, rtol=0
        )
        start += size
    model.unload()


def test_savedmodel_runtime_serves_the_signature_itself(lite_repo: Path, digits: np.ndarray) -> None:
    model = loaded_version(lite_repo / "lstm" / "1", "savedmodel")
    assert model.runtime == "savedmodel"
    np.testing.assert_array_equal(model.predict(digits[:5]), model.reference(digits[:5]))


def test_tflite_runtime_without_the_file_falls_back_to_the_signature(
    lite_repo: Path, digits: np.ndarray, tmp_path: Path
) -> None:
    bare = tmp_path / "gru" / "1"
    shutil.copytree(lite_repo / "gru" / "1", bare)
    (bare / TFLITE_FILE).unlink()
    model = loaded_version(bare, "tflite")
    assert model.runtime == "savedmodel"
    np.testing.assert_array_equal(model.predict(digits[:1]), model.reference(digits[:1]))


def test_a_tflite_file_of_the_wrong_shape_fails_the_load(lite_repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "rnn" / "1"
    shutil.copytree(lite_repo / "rnn" / "1", broken)
    shutil.copy(lite_repo / "lstm" / "1" / TFLITE_FILE, broken / TFLITE_FILE)  # right shape: loads
    LoadedModel("rnn", 1, broken, runtime="tflite").load()
    (broken / TFLITE_FILE).write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError):
        LoadedModel("rnn", 1, broken, runtime="tflite").load()


def test_settings_are_checked() -> None:
    assert parse_buckets("64, 1,8,8") == (1, 8, 64)
    for bad in ("", "0,4", "a,b"):
        with pytest.raises(ValueError, match="xla_buckets"):
            parse_buckets(bad)
    assert check_runtime("xla") == "xla"
    with pytest.raises(ValueError, match="runtime: expected one of auto, savedmodel, xla, tflite"):
        check_runtime("onnx")


def served_runtime_once_compiled(stub: pb_grpc.DigitClassifierStub) -> str:
    """The runtime the server's one version reports, once XLA has compiled (it does so in the
    background after the version loads), or the last one seen after 5 minutes."""
    for _ in range(600):
        runtime = stub.ListModels(pb.ListModelsRequest(), timeout=30).models[0].versions[0].info.runtime
        if runtime.endswith("+xla"):
            break
        time.sleep(0.5)
    return runtime


def test_a_request_larger_than_the_largest_bucket_is_answered_by_a_real_server(
    lite_repo: Path, digits: np.ndarray, tmp_path: Path
) -> None:
    """11 images with buckets 1,4 and --max-batch-size 4: cut into chunks of 4 (the last one padded),
    computed by XLA, every row the SavedModel's."""
    repo = tmp_path / "models"
    shutil.copytree(lite_repo / "gru", repo / "gru")
    server = start_server(repo, "--default-model", "gru", "--xla-buckets", "1,4", "--max-batch-size", "4",
                          "--poll-seconds", "0", "--metrics-port", "-1")
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            assert served_runtime_once_compiled(stub) == "savedmodel+tflite+xla"
            images = digits[:11]
            reply = stub.ClassifyBatch(
                pb.ClassifyBatchRequest(images=[pb.Image(pixels=i.tobytes()) for i in images]), timeout=60
            )
    finally:
        server.stop()
    reference = LoadedModel("gru", 1, repo / "gru" / "1")
    reference.load()
    expected = reference.reference(images)
    got = np.array([p.probabilities for p in reply.predictions], dtype=np.float32)
    assert got.shape == (11, 10)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
    assert [p.digit for p in reply.predictions] == expected.argmax(axis=1).tolist()


DEFAULT_BUCKETS = (1, 4, 16, 64, 256)  # the server's default --xla-buckets: 5 shapes, TensorFlow's warning threshold


class Records(logging.Handler):
    """Every message TensorFlow's Python logger emits while attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_xla_buckets_trace_once_per_bucket_and_never_while_serving(lite_repo: Path, digits: np.ndarray) -> None:
    """Each bucket is traced once, at compile(); serving batches of every size traces nothing more,
    and TensorFlow never warns about retracing (it did at the warm-up of the default 5 buckets)."""
    import tensorflow as tf

    saved_model = tf.saved_model.load(str(lite_repo / "gru" / "1"))
    signature = saved_model.signatures["serving_default"]
    traced: list[tuple[int, ...]] = []

    def counting(images):  # runs only while TensorFlow traces
        traced.append(tuple(images.shape))
        return signature(images=images)

    records = Records()
    logging.getLogger("tensorflow").addHandler(records)
    try:
        xla = XlaBuckets(counting, OUTPUT_NAME, DEFAULT_BUCKETS, keep_alive=saved_model)
        xla.compile()
        assert xla.ready and sorted(traced) == [(size, 28, 28) for size in DEFAULT_BUCKETS]
        after_warm_up = len(traced)
        for size in (*DEFAULT_BUCKETS, 3, 37, 300, 1, 256):  # exact buckets, padded, cut into chunks
            expected = signature(images=tf.constant(digits[:size]))[OUTPUT_NAME].numpy()
            np.testing.assert_allclose(xla.predict(digits[:size]), expected, atol=TOLERANCE, rtol=0)
        assert len(traced) == after_warm_up
        assert xla.traces() == len(DEFAULT_BUCKETS)
    finally:
        logging.getLogger("tensorflow").removeHandler(records)
    assert not [m for m in records.messages if "retracing" in m]


def test_the_server_log_has_no_retracing_warning(lite_repo: Path, digits: np.ndarray, tmp_path: Path) -> None:
    """`python -m digits_server` with the default buckets: compile, serve every bucket size, stop; the
    log (TensorFlow's warnings included) never mentions retracing."""
    repo = tmp_path / "models"
    shutil.copytree(lite_repo / "gru", repo / "gru")
    server = start_server(repo, "--default-model", "gru", "--poll-seconds", "0", "--metrics-port", "-1",
                          "--max-batch-size", "256", env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            assert served_runtime_once_compiled(stub) == "savedmodel+tflite+xla"
            for size in (*DEFAULT_BUCKETS, 3, 100, 256, 16):
                request = pb.ClassifyBatchRequest(images=[pb.Image(pixels=i.tobytes()) for i in digits[:size]])
                assert len(stub.ClassifyBatch(request, timeout=60).predictions) == size
    finally:
        assert server.stop() == 0, server.log()
    log = server.log()
    assert "XLA buckets 4,16,64,256 compiled" in log  # no batch-1 bucket: LiteRT serves single images
    assert "retracing" not in log, [line for line in log.splitlines() if "retracing" in line]
    noise = [line for line in log.splitlines() if "absl::InitializeLog" in line or "cpu_feature_guard" in line]
    assert not noise, noise  # TensorFlow's native start-up notices are dropped


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_is_returned_to_the_system_on_glibc() -> None:
    assert return_free_heap() is True
