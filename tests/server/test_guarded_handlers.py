"""GuardedHandlers on a real grpc.aio server: each method is guarded once (not per call), guards
run first-listed first, unknown methods reach the fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.transport.drain import Drain
from digits_server.transport.guarded_handlers import GuardedHandlers
from digits_server.transport.handler_shapes import behavior_of, preceded, rebuild
from tests.echo import EchoClassifier

pytestmark = pytest.mark.asyncio


class RecordingGuard:
    """A guard that records when it wraps a handler and, per call, that its check ran."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log, self.wrapped = name, log, []

    def __call__(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        self.wrapped.append(method)

        async def check(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.log.append(self.name)
            return request

        return rebuild(handler, preceded(behavior_of(handler), check))


async def test_guards_wrap_once_in_order_and_unknown_methods_reach_the_fallback() -> None:
    calls: list[str] = []
    outer, inner = RecordingGuard("outer", calls), RecordingGuard("inner", calls)
    unknown: list[str] = []

    def fallback(details: grpc.HandlerCallDetails) -> None:
        unknown.append(details.method)
        return None

    services = GuardedHandlers([outer, inner], fallback=fallback)
    pb_grpc.add_DigitClassifierServicer_to_server(EchoClassifier(), services)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([services])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            for index in range(3):
                answer = await stub.Classify(pb.ClassifyRequest(request_id=f"r{index}"))
                assert answer.request_id == f"r{index}"
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await channel.unary_unary("/digits.v1.DigitClassifier/NoSuchMethod")(b"")
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)
    assert outer.wrapped == inner.wrapped == ["/digits.v1.DigitClassifier/Classify"]  # once, not per call
    assert calls == ["outer", "inner"] * 3
    assert unknown == ["/digits.v1.DigitClassifier/NoSuchMethod"]


async def test_the_drain_counts_each_call_while_its_handler_runs() -> None:
    """Drain.guard counts a call from admission until its handler is over: a unary call, a
    response stream read to its end, a call whose handler raises, and a stream the client
    cancels half-way all leave the count at zero."""
    drain = Drain()
    during: list[int] = []

    def observe(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        async def check(request: Any, context: grpc.aio.ServicerContext) -> Any:
            during.append(drain.in_flight)
            return request

        return rebuild(handler, preceded(behavior_of(handler), check))

    services = GuardedHandlers([drain.guard, observe])
    pb_grpc.add_DigitClassifierServicer_to_server(EchoClassifier(), services)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([drain, services])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            assert (await stub.Classify(pb.ClassifyRequest(request_id="one"))).request_id == "one"
            assert drain.in_flight == 0
            answers = [a.request_id async for a in stub.ClassifyStream(
                iter([pb.ClassifyRequest(request_id=f"s{i}") for i in range(3)]))]
            assert answers == ["s0", "s1", "s2"]
            assert drain.in_flight == 0
            with pytest.raises(grpc.aio.AioRpcError) as failed:  # the generated servicer's default raises
                await stub.Feedback(pb.FeedbackRequest(request_id="x"))
            assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert drain.in_flight == 0
            stream = stub.ClassifyStream()
            await stream.write(pb.ClassifyRequest(request_id="c0"))
            assert (await stream.read()).request_id == "c0"
            assert drain.in_flight == 1
            stream.cancel()
            for _ in range(100):  # the server learns of the cancellation asynchronously
                if drain.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert drain.in_flight == 0
    finally:
        await server.stop(None)
    assert during == [1, 1, 1, 1]
