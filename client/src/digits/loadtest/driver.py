"""Load generation for `digits bench`: closed loop (N callers) or open loop (fixed rate),
unary / batch / stream, against any server that speaks digits.v1.

Requests are serialized once up front and sent as raw bytes, so the client spends its CPU on
the transport, not on protobuf: the numbers describe the server. Latency of an open-loop
request is measured from the moment it was *scheduled*, so queueing shows honestly (no
coordinated omission). Requests that finish during the warm-up are not recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

import grpc
import numpy as np

from digits.channel import auth_metadata, balanced_target, channel_credentials, channel_options
from digits.loadtest.config import DISTINCT_REQUESTS, MODES, BenchConfig, Clock, RequestSet
from digits.loadtest.stats import Recorder
from digits.v1 import digits_pb2 as pb

__all__ = ["BenchConfig", "RequestSet", "build_requests", "describe", "run", "MODES"]


def build_requests(config: BenchConfig, images: np.ndarray) -> RequestSet:
    """Serialize DISTINCT_REQUESTS digits.v1 requests built from uint8 images [M,28,28]."""
    if images.ndim != 3 or images.shape[1:] != (28, 28) or not len(images):
        raise ValueError(f"images must be N x 28 x 28 uint8, got shape {images.shape}")
    pixels = np.ascontiguousarray(images, dtype=np.uint8)
    if config.protocol == "v2":
        return RequestSet([_v2_request(config, pixels, i) for i in range(DISTINCT_REQUESTS)])
    spec = pb.ModelSpec(name=config.model, version_label=config.label, experiment=config.experiment)
    if config.version is not None:
        spec.version = config.version
    if config.encoded:  # uploaded image files, cycled
        pictures = [pb.Image(encoded=data) for data in config.encoded]
    else:
        pictures = [pb.Image(pixels=p.tobytes()) for p in pixels[: DISTINCT_REQUESTS * config.images_per_request]]
    payloads = []
    for i in range(DISTINCT_REQUESTS):
        if config.mode == "batch":
            picks = [pictures[(i * config.batch_size + j) % len(pictures)] for j in range(config.batch_size)]
            message = pb.ClassifyBatchRequest(model_spec=spec, images=picks)
        else:
            message = pb.ClassifyRequest(model_spec=spec, image=pictures[i % len(pictures)])
        payloads.append(message.SerializeToString())
    return RequestSet(payloads)


def _v2_request(config: BenchConfig, pixels: np.ndarray, i: int) -> bytes:
    """One serialized ModelInferRequest, built by the server package's v2 request builder."""
    try:
        from digits_server.protocols import kserve_v2_requests
    except ImportError:
        raise ValueError("--protocol v2 needs the digits-server package (its v2 request builder)") from None
    count = config.images_per_request
    picks = np.stack([pixels[(i * count + j) % len(pixels)] for j in range(count)])
    version = str(config.version) if config.version is not None else config.label
    return kserve_v2_requests.infer_request(config.model, picks, version=version).SerializeToString()


def _open_channel(config: BenchConfig) -> grpc.aio.Channel:
    target, balancing = balanced_target(config.target, config.lb_policy)  # one channel, calls spread over servers
    options = channel_options() + balancing
    credentials = channel_credentials(config.tls_ca, config.tls_cert, config.tls_key)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)


async def _unary_caller(call: Callable, requests: RequestSet, clock: Clock, metadata: tuple) -> None:
    timeout = clock.config.timeout
    while clock.running():
        sent = time.perf_counter()
        try:
            await call(requests.next(), timeout=timeout, metadata=metadata)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        clock.record(sent, code)


async def _open_loop(call: Callable, requests: RequestSet, clock: Clock, metadata: tuple) -> None:
    config = clock.config
    interval = 1.0 / (config.rate or 1.0)
    in_flight: set[asyncio.Task] = set()

    async def one(scheduled: float) -> None:
        try:
            await call(requests.next(), timeout=config.timeout, metadata=metadata)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        clock.record(scheduled, code)

    for i in itertools.count():
        scheduled = clock.started + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if not clock.running():
            break
        if len(in_flight) >= config.max_outstanding:
            clock.record(scheduled, "CLIENT_OVERLOADED")
            continue
        task = asyncio.create_task(one(scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=config.timeout)


async def _stream(call: Callable, requests: RequestSet, clock: Clock, metadata: tuple) -> None:
    """One bidirectional stream with up to `window` requests in flight; responses arrive in order."""
    config = clock.config
    window = asyncio.Semaphore(config.window)
    sent_times: list[float] = []
    stream = call(metadata=metadata)

    async def writer() -> None:
        interval = 1.0 / config.rate if config.rate else 0.0
        for i in itertools.count():
            if interval:
                scheduled = clock.started + i * interval
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await window.acquire()
            if not clock.running():
                break
            sent_times.append(time.perf_counter() if not interval else clock.started + i * interval)
            await stream.write(requests.next())
        await stream.done_writing()

    writing = asyncio.create_task(writer())
    received = 0
    try:
        while True:
            message = await stream.read()
            if message is grpc.aio.EOF:
                break
            clock.record(sent_times[received], "OK")
            received += 1
            window.release()
    except grpc.aio.AioRpcError as exc:  # a broken stream counts, warm-up or not
        clock.recorder.codes[exc.code().name] += max(len(sent_times) - received, 1)
        writing.cancel()
    await asyncio.gather(writing, return_exceptions=True)


async def run(
    config: BenchConfig, images: np.ndarray, recorder: Recorder, tick: Callable[[], None] | None = None
) -> Recorder:
    """Drive the server as configured; results land in `recorder` (also returned)."""
    if config.protocol.startswith("v2-rest"):
        from digits.loadtest.rest import run_rest

        return await run_rest(config, images, recorder, tick)
    requests = build_requests(config, images)
    metadata = auth_metadata(config.token)
    async with _open_channel(config) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=config.timeout)
        clock = Clock(config, recorder)
        recorder.begin(clock.measure_from)
        if config.mode == "stream":
            call = channel.stream_stream(config.path)
            workers = [_stream(call, requests, clock, metadata) for _ in range(config.concurrency)]
        else:
            call = channel.unary_unary(config.path)
            if config.rate is not None:
                workers = [_open_loop(call, requests, clock, metadata)]
            else:
                workers = [_unary_caller(call, requests, clock, metadata) for _ in range(config.concurrency)]
        progress = asyncio.create_task(_tick(clock, tick)) if tick is not None else None
        await asyncio.gather(*workers)
        recorder.end()
        if progress is not None:
            progress.cancel()
    recorder.request_bytes = requests.size
    return recorder


async def _tick(clock: Clock, tick: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(0.1)
        tick()


def describe(config: BenchConfig) -> str:
    """One line naming the scenario, e.g. 'unary closed loop, 16 callers, lstm'."""
    load = f"open loop {config.rate:g} req/s" if config.rate else f"closed loop, {config.concurrency} " + (
        "streams" if config.mode == "stream" else "callers"
    )
    what = f"batch {config.batch_size}" if config.mode == "batch" else config.mode
    target = config.experiment and f"experiment {config.experiment}" or (config.model or "default model")
    kind = {"v2": " (v2 ModelInfer)", "v2-rest": " (v2 REST infer)", "v2-rest-json": " (v2 REST infer, JSON)"}
    kind = kind.get(config.protocol, "")
    return f"{what}, {load}, {target}" + kind

