"""The auth guard on a real grpc.aio server (every service behind GuardedHandlers, as the app
wires it): every handler shape, open services, scopes, unknown methods, the no-token loopback
rule seen from a real non-loopback address (in a network namespace the test makes: tests/netns.py),
rejection metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.security.auth import Authorizer, Scope, TokenTable
from digits_server.security.auth_guard import AuthGuard
from digits_server.transport.guarded_handlers import GuardedHandlers
from digits_server.transport.wire_guard import guard_decoding
from tests.echo import EchoClassifier
from tests.netns import non_loopback_address

INFER = "inference-" + "1" * 22
ADMIN = "admin-" + "2" * 26
STREAMS = "test.Streams"  # an unknown service: needs the admin scope (fail closed)

pytestmark = pytest.mark.asyncio


class Admin(pb_grpc.DigitsAdminServicer):
    async def ReloadModels(self, request: pb.ReloadModelsRequest, context: grpc.aio.ServicerContext):
        return pb.ReloadModelsResponse(models=[pb.ModelStatus(name="reloaded")])


async def generator_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext):
    async for request in requests:
        yield request[::-1]


async def writer_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
    async for request in requests:
        await context.write(request.upper())


class Rejections(list):
    """Records what the guard reports about refused calls: (method label, code name)."""

    def __call__(self, method: str, code: str) -> None:
        self.append((method, code))


async def start(authorizer: Authorizer, rejected: Rejections, host: str = "127.0.0.1") -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    guard = AuthGuard(authorizer, rejected)
    services = GuardedHandlers([guard.wrap, guard_decoding], fallback=guard.refuse_unknown)  # as app.py
    pb_grpc.add_DigitClassifierServicer_to_server(EchoClassifier(), services)
    pb_grpc.add_DigitsAdminServicer_to_server(Admin(), services)
    identity = lambda b: b  # noqa: E731
    streams = {
        "Reverse": grpc.stream_stream_rpc_method_handler(generator_stream, identity, identity),
        "Upper": grpc.stream_stream_rpc_method_handler(writer_stream, identity, identity),
    }
    services.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(STREAMS, streams)])
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, services)
    reflecting = reflection.aio.ReflectionServicer(["digits.v1.DigitClassifier", reflection.SERVICE_NAME])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflecting, services)
    server.add_generic_rpc_handlers([services])
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    return server, port


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def sync_stream_codes(target: str, metadata=None) -> dict[str, object]:
    """Every stream shape's result: a list of answers, or the status code it failed with.

    Uses the sync client: the asyncio client sometimes reports INTERNAL "Internal error from
    Core" instead of the server's status when the server ends a request stream early
    (grpc/grpc#36066); the server's status is right, as the sync client shows.
    """
    results: dict[str, object] = {}
    with grpc.insecure_channel(target) as channel:
        calls = {
            "ClassifyStream": pb_grpc.DigitClassifierStub(channel).ClassifyStream(
                iter([pb.ClassifyRequest(request_id=r) for r in "ab"]), metadata=metadata, timeout=20
            ),
            "Reverse": channel.stream_stream(f"/{STREAMS}/Reverse")(iter([b"ab", b"cd"]), metadata=metadata, timeout=20),
            "Upper": channel.stream_stream(f"/{STREAMS}/Upper")(iter([b"ab", b"cd"]), metadata=metadata, timeout=20),
        }
        for name, call in calls.items():
            try:
                results[name] = [getattr(r, "request_id", r) for r in call]
            except grpc.RpcError as error:
                results[name] = error.code()
    return results


async def stream_codes(target: str, metadata=None) -> dict[str, object]:
    """sync_stream_codes off the event loop (the server under test runs on it)."""
    return await asyncio.to_thread(sync_stream_codes, target, metadata)


async def test_tokens_gate_every_handler_shape() -> None:
    rejected = Rejections()
    authorizer = Authorizer(TokenTable({Scope.INFERENCE: [INFER], Scope.ADMIN: [ADMIN]}))
    server, port = await start(authorizer, rejected)
    try:
        target = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(target) as channel:
            stub, admin = pb_grpc.DigitClassifierStub(channel), pb_grpc.DigitsAdminStub(channel)
            # No token: inference and admin calls are UNAUTHENTICATED, with a message saying what to send.
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.Classify(pb.ClassifyRequest(request_id="x"))
            assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer" in missing.value.details()
            assert await code_of(admin.ReloadModels(pb.ReloadModelsRequest())) == grpc.StatusCode.UNAUTHENTICATED
            assert await stream_codes(target) == dict.fromkeys(["ClassifyStream", "Reverse", "Upper"],
                                                                grpc.StatusCode.UNAUTHENTICATED)
            # A wrong token is UNAUTHENTICATED too.
            wrong = bearer("x" * 32)
            assert await code_of(stub.ListModels(pb.ListModelsRequest(), metadata=wrong)) == grpc.StatusCode.UNAUTHENTICATED
            # The inference token classifies, lists and streams, but is PERMISSION_DENIED on admin calls.
            answer = await stub.Classify(pb.ClassifyRequest(request_id="r1"), metadata=bearer(INFER))
            assert answer.request_id == "r1"
            assert (await stub.ListModels(pb.ListModelsRequest(), metadata=bearer(INFER))).models[0].name == "echo"
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await admin.ReloadModels(pb.ReloadModelsRequest(), metadata=bearer(INFER))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED and "admin scope" in denied.value.details()
            assert await stream_codes(target, bearer(INFER)) == {
                "ClassifyStream": ["a", "b"],
                "Reverse": grpc.StatusCode.PERMISSION_DENIED,
                "Upper": grpc.StatusCode.PERMISSION_DENIED,
            }
            # The admin token can do everything.
            reloaded = await admin.ReloadModels(pb.ReloadModelsRequest(), metadata=bearer(ADMIN))
            assert reloaded.models[0].name == "reloaded"
            assert await stream_codes(target, bearer(ADMIN)) == {
                "ClassifyStream": ["a", "b"], "Reverse": [b"ba", b"dc"], "Upper": [b"AB", b"CD"],
            }
            # Bytes that are not protobuf: the token is checked first, then the message.
            garbage = channel.unary_unary("/digits.v1.DigitClassifier/Classify")
            assert await code_of(garbage(b"\xff\xff\xff")) == grpc.StatusCode.UNAUTHENTICATED
            assert await code_of(garbage(b"\xff\xff\xff", metadata=bearer(INFER))) == grpc.StatusCode.INVALID_ARGUMENT
            # Methods that do not exist are refused like any other, so no token, no map of the API.
            ghost = channel.unary_unary("/digits.v1.DigitsAdmin/NoSuchMethod")
            assert await code_of(ghost(b"")) == grpc.StatusCode.UNAUTHENTICATED
            assert await code_of(ghost(b"", metadata=bearer(ADMIN))) == grpc.StatusCode.UNIMPLEMENTED
            # Health checks and reflection stay open.
            status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            services = [s.name async for r in reflect for s in r.list_services_response.service]
            assert "digits.v1.DigitClassifier" in services
    finally:
        await server.stop(None)
    assert rejected.count(("/digits.v1.DigitClassifier/Classify", "UNAUTHENTICATED")) == 2
    assert rejected.count(("/digits.v1.DigitsAdmin/ReloadModels", "PERMISSION_DENIED")) == 1
    assert rejected.count(("unknown", "UNAUTHENTICATED")) == 1  # not the client-chosen name


async def test_open_server_serves_admin_only_to_loopback_clients(request: pytest.FixtureRequest) -> None:
    remote = non_loopback_address(request.node.nodeid)  # runs this test again in a network namespace
    if remote is None:
        return
    rejected = Rejections()
    server, port = await start(Authorizer(TokenTable()), rejected, host="0.0.0.0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as local, \
                grpc.aio.insecure_channel(f"{remote}:{port}") as far:
            # Loopback: everything, through the wrapped (peer-checking) handlers of every shape.
            assert (await pb_grpc.DigitsAdminStub(local).ReloadModels(pb.ReloadModelsRequest())).models
            assert await stream_codes(f"127.0.0.1:{port}") == {
                "ClassifyStream": ["a", "b"], "Reverse": [b"ba", b"dc"], "Upper": [b"AB", b"CD"],
            }
            # From the machine's network address: inference yes, admin no.
            assert (await pb_grpc.DigitClassifierStub(far).Classify(pb.ClassifyRequest(request_id="q"))).request_id == "q"
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await pb_grpc.DigitsAdminStub(far).ReloadModels(pb.ReloadModelsRequest())
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "--allow-remote-admin" in denied.value.details()
            codes = await stream_codes(f"{remote}:{port}")
            assert codes["ClassifyStream"] == ["a", "b"]
            assert codes["Reverse"] == codes["Upper"] == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(None)
    assert rejected.count(("/digits.v1.DigitsAdmin/ReloadModels", "PERMISSION_DENIED")) == 1


async def test_allow_remote_admin_serves_admin_calls_to_anyone(request: pytest.FixtureRequest) -> None:
    remote = non_loopback_address(request.node.nodeid)
    if remote is None:
        return
    server, port = await start(Authorizer(TokenTable(), allow_remote_admin=True), Rejections(), host="0.0.0.0")
    try:
        async with grpc.aio.insecure_channel(f"{remote}:{port}") as far:
            assert (await pb_grpc.DigitsAdminStub(far).ReloadModels(pb.ReloadModelsRequest())).models
    finally:
        await server.stop(None)
