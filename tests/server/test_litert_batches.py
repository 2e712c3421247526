"""The dynamic-batch LiteRT runtime (`assets.extra/model_batch.tflite`): what `auto` serves batches
with when the trainer exported the file, checked against the SavedModel signature (the source of
truth) at every batch size; versions without the file keep XLA."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core.loaded_model import LoadedModel
from digits_server.core.runtimes import LITE_MAX_BATCH, TFLITE_BATCH_FILE, TFLITE_FILE, LiteBatchInterpreters
from tests.modelrepo import loaded_version
from tests.serverproc import start_server

CELLS = ("rnn", "lstm", "gru")
TOLERANCE = 1e-5
BUCKETS = (1, 4, 16, 64)  # XLA's, when it serves
# odd and even sizes, the largest LiteRT batch (64), sizes cut into chunks of it, back to small ones
SIZES = (2, 3, 4, 5, 16, 17, 37, LITE_MAX_BATCH, LITE_MAX_BATCH + 1, 100, 200, 3, 1)




@pytest.mark.parametrize("cell", CELLS)
def test_auto_serves_every_batch_size_with_litert_like_the_signature(
    model_repo: Path, digits: np.ndarray, cell: str
) -> None:
    assert (model_repo / cell / "1" / TFLITE_BATCH_FILE).is_file()  # the trainer wrote it
    model = loaded_version(model_repo / cell / "1")
    assert model.runtime == "savedmodel+tflite+tflite-batch"
    assert model._xla is None and not model._signature_warm  # no compile, no trace
    reference = model.reference(digits)
    start = 0
    for size in SIZES:
        got = model.predict(digits[start : start + size])
        assert got.shape == (size, 10)
        np.testing.assert_allclose(got, reference[start : start + size], atol=TOLERANCE, rtol=0)
        start = (start + size) % 250
    assert model.predict(digits[:0]).shape == (0, 10)
    everything = model.predict(digits)  # 500 images: 7 chunks of 64 and the rest
    np.testing.assert_allclose(everything, reference, atol=TOLERANCE, rtol=0)
    assert (everything.argmax(axis=1) == reference.argmax(axis=1)).all()
    model.unload()


def test_tflite_runtime_serves_batches_with_the_batch_file_too(model_repo: Path, digits: np.ndarray) -> None:
    model = loaded_version(model_repo / "gru" / "1", "tflite")
    assert model.runtime == "savedmodel+tflite+tflite-batch" and model._xla is None
    np.testing.assert_allclose(model.predict(digits[:7]), model.reference(digits[:7]), atol=TOLERANCE, rtol=0)


def test_xla_runtime_ignores_the_litert_files(model_repo: Path, digits: np.ndarray) -> None:
    model = loaded_version(model_repo / "rnn" / "1", "xla", buckets=(1, 4))
    assert model.runtime == "savedmodel+xla" and model._lite_batch is None and model._lite is None
    np.testing.assert_allclose(model.predict(digits[:3]), model.reference(digits[:3]), atol=TOLERANCE, rtol=0)
    model.unload()


def test_a_version_without_the_batch_file_keeps_xla_for_batches(xla_repo: Path, digits: np.ndarray) -> None:
    model = loaded_version(xla_repo / "rnn" / "1", buckets=BUCKETS)
    assert model.runtime == "savedmodel+tflite+xla" and model._lite_batch is None
    np.testing.assert_allclose(model.predict(digits[:5]), model.reference(digits[:5]), atol=TOLERANCE, rtol=0)
    model.unload()


def test_without_the_batch_1_file_the_batch_file_serves_single_images(
    model_repo: Path, digits: np.ndarray, tmp_path: Path
) -> None:
    version = tmp_path / "lstm" / "1"
    shutil.copytree(model_repo / "lstm" / "1", version)
    (version / TFLITE_FILE).unlink()
    model = loaded_version(version)
    assert model.runtime == "savedmodel+tflite-batch"
    singles = np.concatenate([model.predict(digits[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(singles, model.reference(digits[:5]), atol=TOLERANCE, rtol=0)


def test_each_thread_gets_its_own_interpreter_resized_to_each_batch(model_repo: Path, digits: np.ndarray) -> None:
    lite = LiteBatchInterpreters(model_repo / "gru" / "1" / TFLITE_BATCH_FILE, max_batch=16)
    expected = lite.predict(digits[:40])
    seen: dict[str, object] = {}
    answers: dict[str, np.ndarray] = {}

    def work(name: str) -> None:
        for _ in range(20):
            answers[name] = lite.predict(digits[:40])  # 16, 16, then 8: resized back and forth
        seen[name] = lite._sized(8)[0]

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["t0"] is not seen["t1"]
    for answer in answers.values():
        np.testing.assert_array_equal(answer, expected)


def test_a_batch_file_of_the_wrong_shape_fails_the_load(model_repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "rnn" / "1"
    shutil.copytree(model_repo / "rnn" / "1", broken)
    shutil.copy(broken / TFLITE_FILE, broken / TFLITE_BATCH_FILE)  # batch 1 only: not resizable
    with pytest.raises(ValueError, match="expected uint8 \\[-1,28,28\\]"):
        LoadedModel("rnn", 1, broken, runtime="auto").load()


def test_classify_batch_is_served_by_litert_in_a_real_server(
    model_repo: Path, digits: np.ndarray, tmp_path: Path
) -> None:
    """No XLA compile in the log; ListModels names the LiteRT batch runtime (TensorFlow's interpreter
    under --runtime tflite; the standalone one: test_litert_only.py); 137 images (chunks of
    LITE_MAX_BATCH and a rest) answered like the signature."""
    repo = tmp_path / "models"
    shutil.copytree(model_repo / "lstm", repo / "lstm")
    server = start_server(repo, "--default-model", "lstm", "--poll-seconds", "0", "--metrics-port", "-1",
                          "--runtime", "tflite")
    images = digits[:137]
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            runtime = stub.ListModels(pb.ListModelsRequest(), timeout=30).models[0].versions[0].info.runtime
            reply = stub.ClassifyBatch(
                pb.ClassifyBatchRequest(images=[pb.Image(pixels=i.tobytes()) for i in images]), timeout=60
            )
    finally:
        assert server.stop() == 0, server.log()
    assert runtime == "savedmodel+tflite+tflite-batch"
    assert "XLA buckets" not in server.log()  # nothing compiled
    reference = LoadedModel("lstm", 1, repo / "lstm" / "1")
    reference.load()
    expected = reference.reference(images)
    got = np.array([p.probabilities for p in reply.predictions], dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
    assert [p.digit for p in reply.predictions] == expected.argmax(axis=1).tolist()
