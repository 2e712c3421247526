"""The shipped secure-scrape example, run for real: a Prometheus scrapes two digits-servers whose
/metrics are behind HTTPS + basic auth and HTTPS + client certificates; a job without the
password is refused."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.certs import CertificateAuthority
from tests.serverproc import REPO, start_server
from tests.tools import require_tool

EXAMPLE = REPO / "server" / "monitoring" / "prometheus" / "secure-scrape.example.yml"
EXAMPLE_DIR = "/etc/prometheus/digits/"
PASSWORD = "scrape-password-0123456789"

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def targets(prometheus_port: int) -> dict[str, dict]:
    url = f"http://127.0.0.1:{prometheus_port}/api/v1/targets"
    with urllib.request.urlopen(url, timeout=10) as response:
        active = json.load(response)["data"]["activeTargets"]
    return {t["labels"]["job"]: t for t in active}


def test_prometheus_scrapes_protected_metrics_with_the_example_config(tmp_path: Path) -> None:
    binary = require_tool("prometheus")  # skipped without it, except in CI, where it fails
    files = tmp_path / "etc"
    ca = CertificateAuthority(files, "ca")
    server_cert = ca.issue("server", "localhost", server=True)
    ca.issue("prometheus", "prometheus", server=False)
    (files / "metrics-password").write_text(PASSWORD + "\n")
    users = tmp_path / "metrics-users"
    users.write_text(f"prometheus:{PASSWORD}\n")
    users.chmod(0o600)
    models = tmp_path / "models"
    models.mkdir()
    tls = ["--metrics-tls-cert", str(server_cert.cert), "--metrics-tls-key", str(server_cert.key),
           "--metrics-auth-file", str(users)]
    basic = start_server(models, *tls)
    mutual = start_server(models, *tls, "--metrics-tls-client-ca", str(ca.cert_path))
    prometheus = None
    try:
        text = EXAMPLE.read_text().replace(EXAMPLE_DIR, f"{files}/").replace("scrape_interval: 15s", "scrape_interval: 1s")
        text = text.replace("localhost:9100", f"localhost:{basic.metrics_port}")
        text = text.replace("localhost:9101", f"localhost:{mutual.metrics_port}")
        config = yaml.safe_load(text)
        no_password = dict(config["scrape_configs"][0], job_name="no-password")
        del no_password["basic_auth"]
        config["scrape_configs"].append(no_password)
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        checked = subprocess.run(["promtool", "check", "config", str(config_path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        web = free_port()
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{web}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline, seen = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            try:
                seen = targets(web)
            except OSError:
                seen = {}
            if {"digits-server", "digits-server-mtls", "no-password"} <= set(seen) and all(
                t["lastScrape"] != "0001-01-01T00:00:00Z" for t in seen.values()
            ):
                if seen["digits-server"]["health"] == seen["digits-server-mtls"]["health"] == "up":
                    break
            time.sleep(0.5)
        assert seen["digits-server"]["health"] == "up", seen
        assert seen["digits-server-mtls"]["health"] == "up", seen
        assert seen["no-password"]["health"] == "down" and "401" in seen["no-password"]["lastError"], seen
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(30)
        assert basic.stop() == 0, basic.log()
        assert mutual.stop() == 0, mutual.log()


def test_metrics_client_certificate_is_required_when_configured(tmp_path: Path) -> None:
    import ssl

    ca = CertificateAuthority(tmp_path / "pki", "ca")
    server_cert = ca.issue("server", "localhost", server=True)
    client = ca.issue("client", "scraper", server=False)
    models = tmp_path / "models"
    models.mkdir()
    proc = start_server(models, "--metrics-tls-cert", str(server_cert.cert), "--metrics-tls-key", str(server_cert.key),
                        "--metrics-tls-client-ca", str(ca.cert_path))
    try:
        url = f"https://localhost:{proc.metrics_port}/metrics"
        context = ssl.create_default_context(cafile=str(ca.cert_path))
        with pytest.raises(OSError):  # no client certificate: the handshake fails
            urllib.request.urlopen(url, timeout=20, context=context).read()
        context.load_cert_chain(str(client.cert), str(client.key))
        with urllib.request.urlopen(url, timeout=20, context=context) as response:
            assert response.status == 200 and b"digits_requests_total" in response.read()
    finally:
        assert proc.stop() == 0, proc.log()
