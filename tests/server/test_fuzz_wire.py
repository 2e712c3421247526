"""Random bytes on the wire: request messages that are not valid protobuf get INVALID_ARGUMENT
(never UNKNOWN with a Python exception's text), in every handler shape, and valid ones still
reach the servicer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.transport.guarded_handlers import GuardedHandlers
from digits_server.transport.wire_guard import guard_decoding
from tests.echo import EchoClassifier

QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LARGE = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WRITER = "test.Writer"


async def write_each(requests: AsyncIterator[pb.ClassifyRequest], context: grpc.aio.ServicerContext) -> None:
    async for request in requests:
        await context.write(pb.ClassifyResponse(request_id=request.request_id))


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """A grpc.aio server with the decode guard, on its own event loop in a thread."""
    ready, stop, holder = threading.Event(), threading.Event(), {}

    async def serve() -> None:
        server = grpc.aio.server()
        services = GuardedHandlers([guard_decoding])
        pb_grpc.add_DigitClassifierServicer_to_server(EchoClassifier(), services)
        handler = grpc.stream_stream_rpc_method_handler(
            write_each, pb.ClassifyRequest.FromString, pb.ClassifyResponse.SerializeToString
        )
        services.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(WRITER, {"Write": handler})])
        server.add_generic_rpc_handlers([services])
        holder["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop(None)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield f"127.0.0.1:{holder['port']}"
    stop.set()
    thread.join(30)


@pytest.fixture(scope="module")
def channel(target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target) as ch:
        yield ch


def parses(data: bytes) -> bool:
    try:
        pb.ClassifyRequest.FromString(data)
    except DecodeError:
        return False
    return True


def unary_outcome(channel: grpc.Channel, body: bytes) -> tuple[grpc.StatusCode, str]:
    try:
        channel.unary_unary("/digits.v1.DigitClassifier/Classify")(body, timeout=20)
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def stream_outcome(channel: grpc.Channel, method: str, bodies: list[bytes]) -> tuple[list[bytes], grpc.StatusCode, str]:
    answers: list[bytes] = []
    try:
        for answer in channel.stream_stream(method)(iter(bodies), timeout=20):
            answers.append(answer)
    except grpc.RpcError as error:
        return answers, error.code(), error.details()
    return answers, grpc.StatusCode.OK, ""


def check_unary(channel: grpc.Channel, body: bytes) -> None:
    code, details = unary_outcome(channel, body)
    if parses(body):
        assert code == grpc.StatusCode.OK, details
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert details.startswith("request: ") and "not valid protobuf" in details and "Traceback" not in details


@QUICK
@given(st.binary(max_size=256))
def test_random_bytes_to_a_unary_method(channel: grpc.Channel, body: bytes) -> None:
    check_unary(channel, body)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xff\xff", b"\x0a\x05ab", b"\x12\xff\xff\xff\xff\x0f", b"\x08", b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"],
)
def test_known_corrupt_messages(channel: grpc.Channel, body: bytes) -> None:
    check_unary(channel, body)


GOOD = pb.ClassifyRequest(request_id="good").SerializeToString()


@QUICK
@given(st.lists(st.one_of(st.just(GOOD), st.binary(max_size=64)), min_size=1, max_size=6))
def test_random_bytes_in_request_streams(channel: grpc.Channel, bodies: list[bytes]) -> None:
    first_bad = next((i for i, body in enumerate(bodies) if not parses(body)), None)
    for method in ("/digits.v1.DigitClassifier/ClassifyStream", f"/{WRITER}/Write"):  # async generator, writer
        answers, code, details = stream_outcome(channel, method, bodies)
        if first_bad is None:
            assert code == grpc.StatusCode.OK and len(answers) == len(bodies), details
        else:
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
            assert len(answers) == first_bad  # every message before the bad one was answered


@pytest.mark.slow
@LARGE
@given(st.binary(max_size=2048))
def test_large_budget_random_bytes(channel: grpc.Channel, body: bytes) -> None:
    check_unary(channel, body)
