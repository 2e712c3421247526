"""Start a real Prometheus on loopback with the project's shipped config and rules."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.serverproc import REPO
from tests.tools import require_tool, wait_until_ready

PROMETHEUS_DIR = REPO / "server" / "monitoring" / "prometheus"
SERVER_JOB = "digits-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(workdir: Path, metrics_port: int, own_port: int, interval: str = "1s") -> Path:
    """Copy the shipped prometheus.yml and rules into `workdir`, pointing the digits-server
    job at 127.0.0.1:`metrics_port` (and the self-scrape at `own_port`), every interval `interval`."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs[SERVER_JOB].pop("dns_sd_configs", None)  # the compose service name: no such host here
    jobs[SERVER_JOB]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != "envoy"]  # no Envoy here
    if "prometheus" in jobs:
        jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{own_port}"]}]
    shutil.copytree(PROMETHEUS_DIR / "rules", workdir / "rules")
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class PrometheusProcess:
    """A running Prometheus and the HTTP API calls the tests make."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL of the web UI and API."""
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> dict:
        """GET /api/v1/<path>; returns `data`, raises on an error answer."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: {sorted label pairs: value}."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return {(): float(data["result"][1])}
        return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in data["result"]}

    def log(self) -> str:
        """What Prometheus printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_prometheus(binary: str, config: Path, workdir: Path, port: int, timeout: float = 60.0) -> PrometheusProcess:
    """Start Prometheus on 127.0.0.1:`port` and wait until it is ready."""
    log_path = workdir / "prometheus.log"
    args = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    prometheus = PrometheusProcess(process, port, log_path)

    def ready() -> bool:
        with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
            return response.status == 200

    wait_until_ready("prometheus", process, ready, prometheus.log, prometheus.stop, timeout, interval=0.2)
    return prometheus


def start_fleet_prometheus(metrics_ports: list[int], workdir: Path) -> PrometheusProcess:
    """A real Prometheus (skip locally / fail in CI without it) whose digits-server job scrapes every
    replica's metrics port, every second."""
    binary = require_tool("prometheus")
    port = free_port()
    path = write_config(workdir, metrics_ports[0], port)
    config = yaml.safe_load(path.read_text())
    for job in config["scrape_configs"]:
        if job["job_name"] == SERVER_JOB:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{p}" for p in metrics_ports]}]
    path.write_text(yaml.safe_dump(config))
    return start_prometheus(binary, path, workdir, port)
