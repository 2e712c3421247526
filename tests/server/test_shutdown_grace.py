"""Graceful shutdown on a real server under a burst of calls: on SIGTERM every call the server had
accepted (unary calls in flight, one ClassifyStream) ends OK within `--grace-seconds`, health says
NOT_SERVING, later calls are refused UNAVAILABLE, and the process exits 0.

The bug this guards against: grpc core cancels (CANCELLED) every call it has received but not yet
handed to Python when the server's shutdown begins; under a burst the event loop lags behind the
core and dozens of accepted calls were lost that way."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.app import DigitsServer
from digits_server.settings import Settings
from digits_server.transport.drain import BARRIER_METHOD
from tests.serverproc import start_server

GRACE = 15.0
CALLERS = 96  # unary calls kept in flight at once: more than the event loop takes per turn
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Call:
    """One finished unary call, as the client saw it."""

    started: float
    ended: float
    code: str


@dataclass
class Shutdown:
    """What the clients saw around the signal."""

    signalled: float
    calls: list[Call]
    stream_answers: int
    stream_code: str
    health: list[tuple[float, int]]


async def drive(target: str, signal_server, image: pb.Image) -> Shutdown:
    """Keep CALLERS unary calls (single images and batches) and one ClassifyStream in flight,
    signal the server while they run, go on calling until every caller has been refused."""
    single = pb.ClassifyRequest(image=image)
    batch = pb.ClassifyBatchRequest(images=[image] * 48)
    calls: list[Call] = []
    health: list[tuple[float, int]] = []
    signalled = asyncio.Event()
    stream_messages = 40

    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.DigitClassifierStub(channel)

        async def watch() -> None:
            with_status = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
            try:
                async for update in with_status:
                    health.append((time.monotonic(), update.status))
            except grpc.aio.AioRpcError:
                pass

        async def caller(number: int) -> None:
            while True:
                started = time.monotonic()
                try:
                    if number % 4 == 0:
                        await stub.ClassifyBatch(batch, timeout=60)
                    else:
                        await stub.Classify(single, timeout=60)
                    code = "OK"
                except grpc.aio.AioRpcError as error:
                    code = error.code().name
                calls.append(Call(started, time.monotonic(), code))
                if signalled.is_set() and (code != "OK" or time.monotonic() - signalled_at[0] > 8):
                    return  # refused (or still served long after the signal): done

        async def stream_requests():
            for number in range(stream_messages):
                yield single
                if number == 10:
                    await signalled.wait()  # the stream is open and half-way when the signal comes
                await asyncio.sleep(0.02)

        async def stream() -> tuple[int, str]:
            answers = 0
            try:
                async for _ in stub.ClassifyStream(stream_requests(), timeout=60):
                    answers += 1
                return answers, "OK"
            except grpc.aio.AioRpcError as error:
                return answers, error.code().name

        signalled_at = [0.0]
        watcher = asyncio.ensure_future(watch())
        streaming = asyncio.ensure_future(stream())
        callers = [asyncio.ensure_future(caller(n)) for n in range(CALLERS)]
        while sum(c.code == "OK" for c in calls) < 300:  # the burst is in full flow
            await asyncio.sleep(0.01)
        signalled_at[0] = time.monotonic()
        signal_server()
        signalled.set()
        await asyncio.gather(*callers)
        stream_answers, stream_code = await streaming
        await asyncio.wait_for(watcher, 30)
    return Shutdown(signalled_at[0], calls, stream_answers, stream_code, health)


def test_sigterm_lets_every_accepted_call_finish(gru_repo: Path, test_digit: np.ndarray) -> None:
    # a 30 ms batch timeout keeps calls queued, so many are in flight at any moment; the queue
    # bound is raised so that no call is refused for overload (this test is about shutdown)
    proc = start_server(
        gru_repo, "--default-model", "gru", "--grace-seconds", str(GRACE), "--batch-timeout-us", "30000",
        "--max-queued", "100000",
    )
    try:
        image = pb.Image(pixels=test_digit.tobytes())
        seen = asyncio.run(drive(proc.target, lambda: proc.process.send_signal(signal.SIGTERM), image))
        exit_code = proc.process.wait(GRACE + 30)
        exited = time.monotonic()
    finally:
        proc.stop()
    before = [c for c in seen.calls if c.started < seen.signalled]
    after = [c for c in seen.calls if c.started >= seen.signalled]
    in_flight = [c for c in before if c.ended > seen.signalled]
    summary = (
        f"before the signal: {dict(Counter(c.code for c in before))}; "
        f"{len(in_flight)} unary calls in flight at the signal: {dict(Counter(c.code for c in in_flight))}; "
        f"started after it: {dict(Counter(c.code for c in after))}; stream {seen.stream_answers} answers, "
        f"{seen.stream_code}; exit {exit_code} {exited - seen.signalled:.1f} s after the signal"
    )
    print("\n" + summary)
    assert exit_code == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()
    assert len(in_flight) >= CALLERS // 2, summary  # the signal came with the burst in full flow
    assert all(c.code == "OK" for c in before), summary  # nothing accepted is lost
    assert seen.stream_code == "OK" and seen.stream_answers == 40, summary  # the open stream too
    assert {c.code for c in after} <= {"OK", "UNAVAILABLE"}, summary  # later calls: refused at the door
    assert any(c.code == "UNAVAILABLE" for c in after), summary
    flipped = next(t for t, status in seen.health if status == NOT_SERVING)
    assert seen.signalled <= flipped and seen.health[-1][1] == NOT_SERVING
    assert exited - seen.signalled < GRACE + 5, summary


@pytest.mark.asyncio
async def test_the_shutdown_socket_carries_the_barrier_only(gru_repo: Path, test_digit: np.ndarray) -> None:
    settings = dataclasses.replace(
        Settings(), models=gru_repo, port=0, metrics_port=-1, default_model="gru", poll_seconds=0,
    )
    server = DigitsServer(settings)
    await server.start()
    request = pb.ClassifyRequest(image=pb.Image(pixels=test_digit.tobytes()))
    try:
        address = server.drain.address
        assert address is not None and address.startswith("unix:")
        socket_dir = Path(address.removeprefix("unix:")).parent
        assert socket_dir.stat().st_mode & 0o077 == 0  # only the server's user may connect
        assert await server.drain.barrier(10)  # a call through core's queue comes out in Python
        async with grpc.aio.insecure_channel(address) as channel:  # no TLS there: nothing else served
            try:
                await pb_grpc.DigitClassifierStub(channel).Classify(request, timeout=10)
                refused = None
            except grpc.aio.AioRpcError as error:
                refused = error.code()
        assert refused == grpc.StatusCode.PERMISSION_DENIED
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:  # the real port serves
            answer = await pb_grpc.DigitClassifierStub(channel).Classify(request, timeout=10)
        assert answer.served_by.model == "gru"
    finally:
        await server.stop(grace=2)
    assert not socket_dir.exists()


@pytest.mark.asyncio
async def test_the_public_port_does_not_answer_the_barrier(gru_repo: Path, tmp_path: Path) -> None:
    """With a tokens file, the barrier method is unknown on the public port whoever calls it (it
    used to answer OK to a caller with no token, before the auth check); the shutdown socket
    still carries it."""
    tokens = tmp_path / "tokens"
    admin = "admin-token-for-the-barrier-test-0123"
    tokens.write_text(f"admin {admin}\n")
    tokens.chmod(0o600)
    settings = dataclasses.replace(
        Settings(), models=gru_repo, port=0, metrics_port=-1, default_model="gru", poll_seconds=0,
        tokens_file=tokens,
    )
    server = DigitsServer(settings)
    await server.start()
    codes = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            barrier = channel.unary_unary(BARRIER_METHOD)
            for metadata in ((), (("authorization", f"Bearer {admin}"),)):
                try:
                    await barrier(b"0" * 16, metadata=metadata, timeout=10)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code())
            models = pb_grpc.DigitClassifierStub(channel).ListModels
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # the tokens file is in force
                await models(pb.ListModelsRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert codes == [grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNIMPLEMENTED]
        assert await server.drain.barrier(10)  # the private socket still carries it
    finally:
        await server.stop(grace=2)
