"""`digits bench --protocol v2-rest`: the Open Inference Protocol v2 REST infer endpoint, driven
the way tritonclient.http sends it (a small JSON header, then the tensor as binary data with the
`Inference-Header-Content-Length` header; outputs asked back as binary); `--protocol v2-rest-json`:
all JSON (pixels as a `data` list, the answer as JSON), the form every v2 REST server takes
(MLServer has no binary extension). Closed loop only; --target is the REST port (host:port).

The requests are whole HTTP/1.1 messages built once and written as bytes on keep-alive
connections, one per caller (no HTTP library: the client's cost per request is a write and a
read), so the numbers describe the server, as the gRPC driver's pre-serialized messages do.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import numpy as np

from digits.loadtest.config import DISTINCT_REQUESTS, BenchConfig, Clock, RequestSet
from digits.loadtest.stats import Recorder

HEADER_LENGTH = "Inference-Header-Content-Length"


def rest_path(config: BenchConfig) -> str:
    """The infer endpoint of the configured model (and version or label)."""
    version = str(config.version) if config.version is not None else config.label
    return f"/v2/models/{config.model}" + (f"/versions/{version}" if version else "") + "/infer"


def infer_body(pixels: np.ndarray, binary: bool = True) -> tuple[bytes, int | None]:
    """An infer body for uint8 images [N,28,28] (binary extension or all JSON), and the length of
    its JSON header (None when all of it is JSON)."""
    if not binary:
        tensor = {"name": "images", "datatype": "UINT8", "shape": list(pixels.shape), "data": pixels.ravel().tolist()}
        return json.dumps({"inputs": [tensor]}).encode(), None
    header = json.dumps({
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": list(pixels.shape),
                    "parameters": {"binary_data_size": pixels.nbytes}}],
        "parameters": {"binary_data_output": True},
    }).encode()
    return header + np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(), len(header)


def build_rest_requests(config: BenchConfig, pixels: np.ndarray) -> tuple[RequestSet, dict[str, str]]:
    """DISTINCT_REQUESTS bodies, and the headers to send them with (the JSON header's length)."""
    count, binary = config.images_per_request, config.protocol == "v2-rest"
    bodies = [infer_body(np.stack([pixels[(i * count + j) % len(pixels)] for j in range(count)]), binary)
              for i in range(DISTINCT_REQUESTS)]
    if not binary:
        return RequestSet([body for body, _ in bodies]), {"Content-Type": "application/json"}
    # every body has the same JSON header (same shape and size), so the same length
    headers = {HEADER_LENGTH: str(bodies[0][1]), "Content-Type": "application/octet-stream"}
    return RequestSet([body for body, _ in bodies]), headers


class _Connection:
    """One keep-alive HTTP/1.1 connection sending pre-built requests: the client's cost per request is
    a write and a read, so the numbers describe the server (as the gRPC driver's raw bytes do)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> int:
        """Send one request, read the whole answer; returns the HTTP status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            while size := int((await self.reader.readline()).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            marker = lower.find(b"\r\ncontent-length:")
            length = int(head[marker + 17 : head.find(b"\r\n", marker + 2)]) if marker >= 0 else 0
            await self.reader.readexactly(length)
        if b"connection: close" in lower:
            self.close()
        return status

    def close(self) -> None:
        """Drop the connection (the next send opens a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def http_requests(config: BenchConfig, images: np.ndarray) -> RequestSet:
    """The whole HTTP requests (request line, headers, body), built once."""
    bodies, headers = build_rest_requests(config, np.ascontiguousarray(images, dtype=np.uint8))
    host = config.target
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return RequestSet([
        f"POST {rest_path(config)} HTTP/1.1\r\nHost: {host}\r\n{lines}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies.payloads
    ])


async def run_rest(
    config: BenchConfig, images: np.ndarray, recorder: Recorder, tick: Callable[[], None] | None = None
) -> Recorder:
    """Drive the REST infer endpoint with `config.concurrency` callers; results land in `recorder`."""
    if config.rate is not None or config.tls_ca or config.token:
        raise ValueError("--protocol v2-rest drives a closed loop over plain HTTP (no --rate, TLS or token)")
    requests = http_requests(config, images)
    host, _, port = config.target.rpartition(":")
    probe = _Connection(host, int(port))
    await asyncio.wait_for(probe.send(f"GET /v2/health/live HTTP/1.1\r\nHost: {config.target}\r\n\r\n".encode()),
                           config.timeout)
    probe.close()
    clock = Clock(config, recorder)
    recorder.begin(clock.measure_from)

    async def caller() -> None:
        connection = _Connection(host, int(port))
        while clock.running():
            sent = time.perf_counter()
            try:
                status = await asyncio.wait_for(connection.send(requests.next()), config.timeout)
                code = "OK" if status == 200 else f"HTTP_{status}"
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                code = type(exc).__name__
                connection.close()
            clock.record(sent, code)
        connection.close()

    async def progress() -> None:
        while tick is not None:
            await asyncio.sleep(0.1)
            tick()

    ticking = asyncio.create_task(progress())
    await asyncio.gather(*(caller() for _ in range(config.concurrency)))
    recorder.end()
    ticking.cancel()
    recorder.request_bytes = len(requests.payloads[0])
    return recorder
