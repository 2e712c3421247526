"""Fuzz cases against a real server with real models, over gRPC: the corpus of once-failing
requests, random requests, hostile image files, oversize and empty messages. Every call ends in
a documented status code with a message and no traceback; the server keeps serving and its
memory stays bounded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.fuzzing import (
    DOCUMENTED_CODES,
    batch_requests,
    classify_requests,
    corpus_requests,
    expected_code,
    hostile_images,
)
from tests.serverproc import ServerProcess, source_env, start_server

MAX_MESSAGE_BYTES = 1 << 20
MAX_BATCH_IMAGES = 8
# Decoding one hostile image may cost a little; a bomb decoded in full would cost hundreds of MB.
MEMORY_HEADROOM = 150 * 1024 * 1024
ROUND_TRIPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server(model_repo: Path) -> Iterator[ServerProcess]:
    proc = start_server(
        model_repo, "--max-message-bytes", str(MAX_MESSAGE_BYTES), "--max-batch-images", str(MAX_BATCH_IMAGES)
    )
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", 8 * MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(server.target, options=options) as ch:
        yield ch


@pytest.fixture(scope="module")
def digit(tiny_npz: Path) -> np.ndarray:
    with np.load(tiny_npz) as data:
        return data["x_test"][0]


def raw_call(channel: grpc.Channel, method: str, body: bytes) -> tuple[grpc.StatusCode, str, bytes]:
    """Send `body` as-is to /digits.v1.DigitClassifier/<method>: (code, details, response bytes)."""
    try:
        answer = channel.unary_unary(f"/digits.v1.DigitClassifier/{method}")(body, timeout=60)
    except grpc.RpcError as error:
        return error.code(), error.details() or "", b""
    return grpc.StatusCode.OK, "", answer


def assert_clean(code: grpc.StatusCode, details: str) -> None:
    assert code in DOCUMENTED_CODES, (code, details)
    assert "Traceback" not in details and "Unexpected <class" not in details, details
    assert len(details) <= 1000
    if code != grpc.StatusCode.OK:
        assert details, code


@pytest.mark.parametrize("method, path", corpus_requests(), ids=lambda v: getattr(v, "name", v))
def test_corpus_case_gets_its_code(channel: grpc.Channel, method: str, path: Path) -> None:
    code, details, _ = raw_call(channel, method, path.read_bytes())
    assert code == expected_code(path), details
    assert_clean(code, details)


@ROUND_TRIPS
@given(classify_requests())
def test_random_classify_requests(channel: grpc.Channel, request: pb.ClassifyRequest) -> None:
    code, details, answer = raw_call(channel, "Classify", request.SerializeToString())
    assert_clean(code, details)
    if code == grpc.StatusCode.OK:
        response = pb.ClassifyResponse.FromString(answer)
        assert 0 <= response.digit <= 9 and len(response.probabilities) == 10


@ROUND_TRIPS
@given(batch_requests(max_images=MAX_BATCH_IMAGES + 2))
def test_random_batch_requests(channel: grpc.Channel, request: pb.ClassifyBatchRequest) -> None:
    code, details, answer = raw_call(channel, "ClassifyBatch", request.SerializeToString())
    assert_clean(code, details)
    if code == grpc.StatusCode.OK:
        assert len(pb.ClassifyBatchResponse.FromString(answer).predictions) == len(request.images)
    if len(request.images) > MAX_BATCH_IMAGES:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details  # the limit, or an earlier field


def test_hostile_image_files_and_memory(channel: grpc.Channel, server: ServerProcess) -> None:
    before = server.memory()
    outcomes = {}
    for case in hostile_images():
        request = pb.ClassifyRequest(model_spec=pb.ModelSpec(name="lstm"), image=pb.Image(encoded=case.build()))
        code, details, _ = raw_call(channel, "Classify", request.SerializeToString())
        outcomes[case.name] = code.name
        assert_clean(code, details)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (case.name, code, details)
        if case.outcome == "invalid":
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (case.name, details)
        if case.outcome == "ok":
            assert code == grpc.StatusCode.OK, (case.name, details)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert details.startswith("image.encoded"), (case.name, details)
    after = server.memory()
    growth = after["peak"] - before["peak"]
    print(f"hostile images: {outcomes}; peak RSS {before['peak'] >> 20} -> {after['peak'] >> 20} MiB")
    assert growth < MEMORY_HEADROOM, f"peak RSS grew by {growth >> 20} MiB"


def test_oversize_and_empty_messages(channel: grpc.Channel, digit: np.ndarray) -> None:
    huge = pb.ClassifyRequest(image=pb.Image(encoded=b"\x00" * (2 * MAX_MESSAGE_BYTES))).SerializeToString()
    code, details, _ = raw_call(channel, "Classify", huge)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details  # gRPC's own message size limit
    code, details, _ = raw_call(channel, "Classify", b"")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("image"), details
    code, details, _ = raw_call(channel, "ClassifyBatch", b"")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("images"), details
    too_many = pb.ClassifyBatchRequest(images=[pb.Image(pixels=digit.tobytes())] * (MAX_BATCH_IMAGES + 1))
    code, details, _ = raw_call(channel, "ClassifyBatch", too_many.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and f"limit of {MAX_BATCH_IMAGES}" in details, details


def test_cli_reports_hostile_files_cleanly(server: ServerProcess, tmp_path: Path) -> None:
    files = []
    for case in hostile_images():
        if case.outcome == "invalid":
            files.append(tmp_path / f"{case.name}.png")
            files[-1].write_bytes(case.build())
    completed = subprocess.run(
        [sys.executable, "-m", "digits.cli", "classify", *map(str, files), "--target", server.target],
        capture_output=True, text=True, env=source_env(), timeout=300,
    )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr + completed.stdout, completed.stderr


def test_server_still_serves_after_the_fuzzing(channel: grpc.Channel, server: ServerProcess, digit: np.ndarray) -> None:
    stub = pb_grpc.DigitClassifierStub(channel)
    assert {m.name for m in stub.ListModels(pb.ListModelsRequest(), timeout=30).models} == {"rnn", "lstm", "gru"}
    answer = stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=digit.tobytes())), timeout=30)
    assert answer.served_by.model == "lstm" and len(answer.probabilities) == 10
    assert server.process.poll() is None
