"""Start MLServer 1.7.1 (the peer) on free loopback ports, serving the harness' SavedModels through
bench/peers/digits_mlserver_runtime.py with adaptive batching, from its own venv.

`start(models, cells, venv)` makes the venv when it is missing (bench/peers/setup.sh, from PyPI),
writes settings.json and one model-settings.json per cell, and waits until every model is ready.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / ".venv-mlserver"
MAX_BATCH_SIZE = 64  # adaptive batching, like digits-server's --max-batch-size
MAX_BATCH_TIME = 0.001  # seconds MLServer waits to fill a batch (its own default is 0: no batching)


def ensure_venv(venv: Path = VENV) -> Path:
    """The peer's venv, made by setup.sh when it is not there yet (a few minutes, from PyPI)."""
    if not (venv / ".installed").is_file():
        subprocess.run(["bash", str(HERE / "setup.sh"), str(venv)], check=True, cwd=REPO)
    return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def newest_version(models: Path, cell: str) -> Path:
    return max((p for p in (models / cell).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def write_settings(workdir: Path, models: Path, cells: list[str]) -> tuple[int, int]:
    """settings.json and model-settings.json files in `workdir`; returns the gRPC and REST ports."""
    grpc_port, http_port = free_port(), free_port()
    settings = {"host": "127.0.0.1", "grpc_port": grpc_port, "http_port": http_port, "metrics_port": free_port(),
                "parallel_workers": 1, "debug": False}
    (workdir / "settings.json").write_text(json.dumps(settings))
    shutil.copy(HERE / "digits_mlserver_runtime.py", workdir / "digits_mlserver_runtime.py")
    for cell in cells:
        model = workdir / cell
        model.mkdir()
        (model / "model-settings.json").write_text(json.dumps({
            "name": cell, "implementation": "digits_mlserver_runtime.SavedModelRuntime",
            "max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MAX_BATCH_TIME,
            "parameters": {"uri": str(newest_version(models, cell))},
        }))
    return grpc_port, http_port


def ready(port: int, cells: list[str]) -> bool:
    """Whether MLServer's v2 ModelReady says yes for every cell (over its gRPC port)."""
    import grpc

    from digits_server.apis import inference_v2_pb2 as v2
    from digits_server.apis import inference_v2_pb2_grpc as v2_grpc

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = v2_grpc.GRPCInferenceServiceStub(channel)
            return all(stub.ModelReady(v2.ModelReadyRequest(name=cell), timeout=2).ready for cell in cells)
    except grpc.RpcError:
        return False


def start(models: Path, cells: list[str], venv: Path = VENV, timeout: float = 300.0):
    """MLServer serving `cells`; returns (gRPC target, process, stop, REST target)."""
    venv = ensure_venv(venv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
    port, http_port = write_settings(workdir, models, cells)
    log = open(workdir / "server.log", "wb")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    process = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(workdir)], stdout=log,
                               stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True)
    started = time.monotonic()
    while not ready(port, cells):
        if process.poll() is not None or time.monotonic() - started > timeout:
            process.kill()
            raise RuntimeError(f"MLServer did not start:\n{(workdir / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)

    def stop() -> None:
        try:
            os.killpg(process.pid, 15)  # MLServer and its worker processes
            process.wait(20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(process.pid, 9)
            process.wait()
        log.close()

    return f"127.0.0.1:{port}", process, stop, f"127.0.0.1:{http_port}"
