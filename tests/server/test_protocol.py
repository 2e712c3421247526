"""Protocol hygiene on a real server process: ClassifyStream, grpc.health.v1 per model, server
reflection, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.modelrepo import private_repo
from tests.serverproc import start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return private_repo(model_repo, tmp_path_factory.mktemp("protocol") / "models", ("rnn", "gru"))


@pytest.fixture(scope="module")
def server(repo: Path):
    proc = start_server(repo, "--default-model", "gru", "--poll-seconds", "0")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as channel:
        yield channel


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"][:300], data["y_test"][:300]


def test_classify_stream_answers_every_message_in_order(channel, digits) -> None:
    images, labels = digits
    stub = pb_grpc.DigitClassifierStub(channel)
    expected = stub.ClassifyBatch(pb.ClassifyBatchRequest(
        model_spec=pb.ModelSpec(name="rnn"), images=[pb.Image(pixels=i.tobytes()) for i in images]), timeout=60)
    requests = (
        pb.ClassifyRequest(model_spec=pb.ModelSpec(name="rnn"), image=pb.Image(pixels=image.tobytes()),
                           true_label=int(label), request_id=f"digit-{i}")
        for i, (image, label) in enumerate(zip(images, labels))
    )
    replies = list(stub.ClassifyStream(requests, timeout=120))
    assert [r.request_id for r in replies] == [f"digit-{i}" for i in range(len(images))]
    assert [r.digit for r in replies] == [p.digit for p in expected.predictions]
    assert {r.served_by.model for r in replies} == {"rnn"}


def test_a_bad_stream_message_ends_the_stream_with_its_code_after_the_good_ones(channel, digits) -> None:
    images, _ = digits
    requests = [pb.ClassifyRequest(image=pb.Image(pixels=images[0].tobytes())),
                pb.ClassifyRequest(image=pb.Image(pixels=images[1].tobytes())),
                pb.ClassifyRequest(image=pb.Image(pixels=b"\x00" * 10)),
                pb.ClassifyRequest(image=pb.Image(pixels=images[3].tobytes()))]
    stream = pb_grpc.DigitClassifierStub(channel).ClassifyStream(iter(requests), timeout=60)
    received = []
    with pytest.raises(grpc.RpcError) as error:
        for reply in stream:
            received.append(reply)
    assert len(received) == 2
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("stream message 2: image.pixels")


def test_health_overall_and_per_model(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "digits.v1.DigitClassifier", "rnn", "gru"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == SERVING
    with pytest.raises(grpc.RpcError) as unknown:
        health.Check(health_pb2.HealthCheckRequest(service="lstm"), timeout=10)  # not in this repository
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services_and_describes_them(channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(reflection.ServerReflectionInfo(iter([
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="digits.v1.DigitClassifier"),
    ]), timeout=10))
    services = {s.name for s in replies[0].list_services_response.service}
    assert {"digits.v1.DigitClassifier", "digits.v1.DigitsAdmin", "grpc.health.v1.Health"} <= services
    assert replies[1].file_descriptor_response.file_descriptor_proto  # what grpcurl needs to call it


def test_a_model_without_an_available_version_is_not_serving(model_repo: Path, tmp_path: Path) -> None:
    repo = private_repo(model_repo, tmp_path / "models")
    broken = repo / "rnn" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a model")
    proc = start_server(repo, "--default-model", "gru", "--poll-seconds", "0")
    try:
        with grpc.insecure_channel(proc.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(service="rnn"), timeout=10).status == NOT_SERVING
            assert health.Check(health_pb2.HealthCheckRequest(service="gru"), timeout=10).status == SERVING
            assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == SERVING
    finally:
        assert proc.stop() == 0


def test_sigterm_turns_health_off_refuses_new_calls_and_drains_the_in_flight_one(repo: Path, digits) -> None:
    # a 2 s batch timeout keeps a request in flight long enough to send SIGTERM meanwhile
    proc = start_server(repo, "--default-model", "gru", "--batch-timeout-us", "2000000", "--grace-seconds", "20")
    image = pb.Image(pixels=digits[0][0].tobytes())
    with grpc.insecure_channel(proc.target) as channel:
        stub = pb_grpc.DigitClassifierStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
        assert next(watch).status == SERVING
        in_flight = stub.Classify.future(pb.ClassifyRequest(image=image), timeout=60)
        time.sleep(0.5)
        proc.process.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING  # load balancers learn first
        refused = None
        for _ in range(50):  # the port stops taking calls within moments of the signal
            try:
                stub.Classify(pb.ClassifyRequest(image=image), timeout=5)
            except grpc.RpcError as exc:
                refused = exc.code()
                break
            time.sleep(0.05)
        # refused UNAVAILABLE: by the server while the in-flight call finishes, then by the GOAWAY
        assert refused == grpc.StatusCode.UNAVAILABLE
        assert in_flight.result().served_by.model == "gru"  # the in-flight call finished normally
        watch.cancel()
        code = proc.process.wait(60)
    assert code == 0, proc.log()
    assert "shutting down" in proc.log()
