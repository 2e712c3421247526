"""Start-up and resident memory of a server configuration, measured from outside like a supervisor sees it.

`time_to_serving` execs `python -m digits_server` on a port chosen up front and polls the standard
gRPC health service every 10 ms: the figure is the time from exec to the first SERVING answer (the
server reports SERVING once every version is loaded and warmed up). It then reads the process' RSS
(three cells loaded, idle) and whether any file of a `tensorflow` package is mapped into it.

    python bench/startup.py --models DIR [--python .venv-lite/bin/python] [--repeats 3] [-- FLAGS...]
prints one JSON document (the harness, bench/run.py, calls `measure` directly).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serverproc import source_env

LITE_PYTHON = REPO / ".venv-lite" / "bin" / "python"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serving(target: str) -> bool:
    """Whether the server's overall health (service "") is SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def tensorflow_mapped(pid: int) -> bool:
    """Whether a file of a `tensorflow` package (its shared libraries) is mapped into the process."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "/tensorflow/" in maps or "libtensorflow" in maps


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def time_to_serving(python: str, models: Path, flags: list[str], timeout: float = 180.0) -> dict:
    """One start: {"seconds": exec -> SERVING, "rss_mb": loaded and idle, "tensorflow_loaded": bool}."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    args = [python, "-m", "digits_server", "--models", str(models), "--port", str(port), "--metrics-port", "-1",
            "--poll-seconds", "0", *flags]
    with open(workdir / "server.log", "wb") as log:
        began = time.perf_counter()
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=source_env(), cwd=workdir)
    try:
        while not serving(f"127.0.0.1:{port}"):
            if process.poll() is not None or time.perf_counter() - began > timeout:
                raise RuntimeError(f"{' '.join(args)} did not serve:\n{(workdir / 'server.log').read_text()[-3000:]}")
            time.sleep(0.01)
        seconds = time.perf_counter() - began
        time.sleep(1.0)  # background work after SERVING (none expected) settles before RSS is read
        return {"seconds": round(seconds, 3), "rss_mb": round(rss_mb(process.pid), 1),
                "tensorflow_loaded": tensorflow_mapped(process.pid)}
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def measure(python: str, models: Path, flags: list[str], repeats: int = 3) -> dict:
    """`repeats` starts one after another: the median seconds and RSS, and every run."""
    runs = [time_to_serving(python, models, flags) for _ in range(repeats)]
    return {"python": python, "flags": flags, "runs": runs,
            "median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_rss_mb": statistics.median(r["rss_mb"] for r in runs),
            "tensorflow_loaded": any(r["tensorflow_loaded"] for r in runs)}


def lite_python() -> str:
    """The interpreter of .venv-lite (no TensorFlow installed) when made, else this one."""
    return str(LITE_PYTHON) if LITE_PYTHON.exists() else sys.executable


def main() -> None:
    """Measure one configuration and print the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--python", type=lambda p: str(Path(p).absolute()), default=sys.executable,
                        help="interpreter that runs the server")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("flags", nargs="*", help="server flags (after --)")
    args = parser.parse_args()
    print(json.dumps(measure(args.python, args.models, args.flags, args.repeats), indent=1))


if __name__ == "__main__":
    main()
