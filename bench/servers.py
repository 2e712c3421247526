"""Starting the four servers the harness compares, one at a time, on free loopback ports, and
reading their resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.serverproc import ServerProcess, source_env, start_server

HERE = Path(__file__).resolve().parent


@dataclass
class Running:
    """A started server: where to reach it and how to stop it."""

    name: str
    target: str
    pid: int
    _stop: object
    http_target: str = ""  # host:port of its REST port, when it has one

    def stop(self) -> None:
        """Terminate it and wait."""
        self._stop()  # type: ignore[operator]


def start_baseline(kind: str, models: Path, cells: list[str], timeout: float = 180.0) -> Running:
    """`bench/baselines.py --kind KIND` in a subprocess; waits for its ready file."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    ready = workdir / "ready.json"
    log = open(workdir / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, str(HERE / "baselines.py"), "--kind", kind, "--models", str(models),
         "--cells", ",".join(cells), "--ready-file", str(ready)],
        stdout=log, stderr=subprocess.STDOUT, env=source_env(), cwd=workdir,
    )
    started = time.monotonic()
    while not ready.exists():
        if process.poll() is not None or time.monotonic() - started > timeout:
            process.kill()
            raise RuntimeError(f"baseline {kind} did not start:\n{(workdir / 'server.log').read_text()[-3000:]}")
        time.sleep(0.05)
    port = json.loads(ready.read_text())["port"]

    def stop() -> None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

    return Running(kind, f"127.0.0.1:{port}", process.pid, stop)


def expects_xla(flags: list[str]) -> bool:
    """Whether the server flags may leave XLA on (--runtime auto or xla, the default auto)."""
    text = " ".join(flags).replace("=", " ").split()
    runtime = text[text.index("--runtime") + 1] if "--runtime" in text[:-1] else "auto"
    return runtime in ("auto", "xla")


def start_ours(models: Path, flags: list[str], compile_timeout: float = 300.0, python: str = sys.executable,
               name: str = "ours") -> Running:
    """`python -m digits_server` on free ports; when XLA may be on, waits until every model's batch
    runtime is ready (XLA buckets compile in the background after loading; LiteRT is at once)."""
    server: ServerProcess = start_server(
        models, "--metrics-port", "-1", "--poll-seconds", "0", "--http-port", "0", *flags, python=python
    )
    if expects_xla(flags):
        wait_compiled(server.target, compile_timeout)
    http_target = f"127.0.0.1:{server.extra['http_port']}"
    return Running(name, server.target, server.process.pid, server.stop, http_target)


def wait_compiled(target: str, timeout: float) -> None:
    """Poll ListModels until every available version reports a batch runtime: "+xla" (compiled),
    "+tflite-batch" or "litert" (a dynamic-batch LiteRT model, which needs no compile)."""
    import grpc

    from digits.v1 import digits_pb2 as pb
    from digits.v1 import digits_pb2_grpc as pb_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.DigitClassifierStub(channel)
        while time.monotonic() < deadline:
            models = stub.ListModels(pb.ListModelsRequest(), timeout=10).models
            runtimes = [v.info.runtime for m in models for v in m.versions if v.state == pb.MODEL_STATE_AVAILABLE]
            if runtimes and all(("+xla" in runtime or "+tflite-batch" in runtime or runtime == "litert")
                                for runtime in runtimes):
                return
            time.sleep(0.5)
    raise TimeoutError(f"batch runtimes (XLA buckets) not ready after {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far, all threads (its exited ones too).

    Read from the process' CPU-time clock (Linux encodes another process' clock id as
    (~pid << 3) | 2, CPUCLOCK_SCHED), exact to the nanosecond; /proc's utime + stime count in
    10 ms ticks, 1-2% of a benchmark round. /proc is the fallback where the clock is refused."""
    try:
        return time.clock_gettime((~pid << 3) | 2)
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """A process and its running descendants (MLServer computes in worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append(current)
    return found


def _tree_sum(pid: int, measure) -> float:
    total = 0.0
    for member in process_tree(pid):
        try:
            total += measure(member)
        except (FileNotFoundError, ProcessLookupError):  # exited meanwhile
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """cpu_seconds of a process and of its running descendants (MLServer computes in a worker process)."""
    return _tree_sum(pid, cpu_seconds)


def tree_rss_mb(pid: int) -> float:
    """rss_mb of a process plus its running descendants (MLServer's main process and its workers).
    Pages shared between them (after fork) count once per process, as `ps` counts them."""
    return _tree_sum(pid, rss_mb)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_mlserver(models: Path, cells: list[str]) -> Running:
    """MLServer 1.7.1 serving the same SavedModels (bench/peers/mlserver.py)."""
    from bench.peers import mlserver

    target, process, stop, http_target = mlserver.start(models, cells)
    return Running("mlserver", target, process.pid, stop, http_target)
