"""Start a real `digits-server` process on free loopback ports for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = [REPO / "server" / "src", REPO / "client" / "src", REPO / "trainer" / "src"]


def source_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that runs this checkout's code (not an installed copy)."""
    env = dict(os.environ)
    paths = [str(p) for p in SOURCE_DIRS]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


@dataclass
class ServerProcess:
    """A running server: its ports, its process and its log."""

    process: subprocess.Popen
    port: int
    metrics_port: int
    log_path: Path
    workdir: Path
    extra: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        """host:port for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The REST port's base URL (a server started with --http-port)."""
        return f"http://127.0.0.1:{self.extra['http_port']}"

    @property
    def metrics_url(self) -> str:
        """The /metrics URL."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def memory(self) -> dict[str, int]:
        """Resident memory of the server process in bytes: {"rss": now, "peak": high-water mark}."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields["rss" if key == "VmRSS" else "peak"] = int(value.split()[0]) * 1024
        return fields

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, SIGKILL if it does not exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    models: Path,
    *flags: str,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    workdir: Path | None = None,
    command_prefix: list[str] | None = None,
    python: str = sys.executable,
) -> ServerProcess:
    """Start `python -m digits_server --models MODELS --port 0 --metrics-port 0 FLAGS...` and wait until it serves.

    `command_prefix` runs it through another command that execs it (e.g. a mount namespace);
    `python` is the interpreter (another venv's, e.g. .venv-lite's without TensorFlow)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="digits-server-"))
    ready = workdir / "ready.json"
    log_path = workdir / "server.log"
    ready.unlink(missing_ok=True)
    args = [python, "-m", "digits_server", "--models", str(models), "--port", "0", "--metrics-port", "0"]
    args = [*(command_prefix or []), *args, "--ready-file", str(ready), *flags]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=source_env(env), cwd=workdir)
    started = time.monotonic()
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"digits-server exited with {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() - started > timeout:
            process.kill()
            raise TimeoutError(f"digits-server not ready after {timeout}s:\n{log_path.read_text()}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    return ServerProcess(process, info["port"], info["metrics_port"], log_path, workdir, info)


def run_server_until_exit(models: Path, *flags: str, env: dict[str, str] | None = None, timeout: float = 120.0,
                          python: str = sys.executable):
    """Run `python -m digits_server --models MODELS FLAGS...` expecting it to exit by itself (a startup
    error); returns the CompletedProcess with text stdout/stderr."""
    args = [python, "-m", "digits_server", "--models", str(models), *flags]
    return subprocess.run(args, capture_output=True, text=True, env=source_env(env), timeout=timeout)
