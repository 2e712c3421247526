"""Which asyncio HTTP stack the server's REST port runs on: aiohttp's web server, or uvicorn
(httptools parser) with starlette, measured by the server's CPU time per request.

Each stack serves the same endpoint in its own process: POST a v2-shaped JSON body of one
28x28 image, get a small JSON answer (parse + serialise, no model: what is measured is the
stack). One load process keeps CALLERS requests in flight over keep-alive connections for
SECONDS. Reported: requests/s and the server process's CPU microseconds per request (user +
system, from /proc), which is what the stack costs whatever else the shared machine runs.

    .venv/bin/pip install aiohttp==3.14.5 uvicorn==0.54.0 starlette==1.10.0 httptools==0.9.0
    .venv/bin/python bench/http_stacks.py [--seconds 5] [--callers 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

BODY = json.dumps(
    {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": [7] * 784}]}
).encode()
ANSWER = {"model_name": "m", "outputs": [{"name": "digit", "datatype": "INT32", "shape": [1], "data": [7]}]}


def _answer(body: bytes) -> bytes:
    request = json.loads(body)
    assert len(request["inputs"][0]["data"]) == 784
    return json.dumps(ANSWER).encode()


def serve_aiohttp(port: int) -> None:
    from aiohttp import web

    async def infer(request: web.Request) -> web.Response:
        return web.Response(body=_answer(await request.read()), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v2/models/{name}/infer", infer)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_starlette(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def infer(request: Request) -> Response:
        return Response(_answer(await request.body()), media_type="application/json")

    app = Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="httptools")


async def load(port: int, callers: int, seconds: float) -> int:
    import aiohttp

    done = 0
    stop = time.monotonic() + seconds
    url = f"http://127.0.0.1:{port}/v2/models/m/infer"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=callers)) as session:

        async def caller() -> None:
            nonlocal done
            while time.monotonic() < stop:
                async with session.post(url, data=BODY, headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    assert response.status == 200
                done += 1

        await asyncio.gather(*(caller() for _ in range(callers)))
    return done


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(stack: str, callers: int, seconds: float) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", stack, "--port", str(port)])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(load(port, callers, 1.0))  # warm up
        before = cpu_seconds(server.pid)
        count = asyncio.run(load(port, callers, seconds))
        used = cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait()
    return {"stack": stack, "requests_per_s": count / seconds, "server_cpu_us_per_request": 1e6 * used / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=["aiohttp", "starlette"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        (serve_aiohttp if args.serve == "aiohttp" else serve_starlette)(args.port)
        return
    for _ in range(args.rounds):  # interleaved, so drift on the shared machine hits both
        for stack in ("aiohttp", "starlette"):
            print(json.dumps(measure(stack, args.callers, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
