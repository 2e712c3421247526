"""`digits bench --protocol v2-rest`: the Open Inference Protocol v2 REST infer endpoint, driven
the way tritonclient.http sends it (a small JSON header, then the tensor as binary data with the
`Inference-Header-Content-Length` header; outputs asked back as binary); `--protocol v2-rest-json`:
all JSON (pixels as a `data` list, the answer as JSON), the form every v2 REST server takes
(MLServer has no binary extension). Keep-alive connections, one per caller; closed loop only;
--target is the REST port (host:port).

Needs aiohttp (`pip install 'digits-client[rest]'`; digits-server brings it too).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import numpy as np

from digits.loadtest.driver import DISTINCT_REQUESTS, BenchConfig, RequestSet, _Clock
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


async def run_rest(
    config: BenchConfig, images: np.ndarray, recorder: Recorder, tick: Callable[[], None] | None = None
) -> Recorder:
    """Drive the REST infer endpoint with `config.concurrency` callers; results land in `recorder`."""
    try:
        import aiohttp
    except ImportError:
        raise ValueError("--protocol v2-rest needs aiohttp: pip install 'digits-client[rest]'") from None
    if config.rate is not None or config.tls_ca or config.token:
        raise ValueError("--protocol v2-rest drives a closed loop over plain HTTP (no --rate, TLS or token)")
    requests, headers = build_rest_requests(config, np.ascontiguousarray(images, dtype=np.uint8))
    url = f"http://{config.target}{rest_path(config)}"
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    connector = aiohttp.TCPConnector(limit=config.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.get(f"http://{config.target}/v2/health/live"):
            pass  # connected (raises when nothing answers)
        clock = _Clock(config, recorder)
        recorder.begin(clock.measure_from)

        async def caller() -> None:
            while clock.running():
                sent = time.perf_counter()
                try:
                    async with session.post(url, data=requests.next(), headers=headers) as response:
                        await response.read()
                        code = "OK" if response.status == 200 else f"HTTP_{response.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    code = type(exc).__name__
                clock.record(sent, code)

        async def progress() -> None:
            while tick is not None:
                await asyncio.sleep(0.1)
                tick()

        ticking = asyncio.create_task(progress())
        await asyncio.gather(*(caller() for _ in range(config.concurrency)))
        recorder.end()
        ticking.cancel()
    recorder.request_bytes = requests.size
    return recorder
