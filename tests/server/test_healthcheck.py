"""`digits-server-healthcheck`, the container health check, against real servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.certs import CertificateAuthority
from tests.promproc import free_port
from tests.serverproc import source_env, start_server


def healthcheck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digits_server.health_probe", *args], capture_output=True,
                          text=True, env=source_env(), timeout=60)


@pytest.fixture(scope="module")
def server(model_repo: Path):
    proc = start_server(model_repo)
    yield proc
    assert proc.stop() == 0, proc.log()


def test_serving_server_and_model_are_healthy(server) -> None:
    result = healthcheck("--target", server.target)
    assert result.returncode == 0 and "(server): SERVING" in result.stdout, result
    assert healthcheck("--target", server.target, "--service", "gru").returncode == 0


def test_unknown_service_and_no_server_are_unhealthy(server) -> None:
    unknown = healthcheck("--target", server.target, "--service", "no-such-model")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    nobody = healthcheck("--target", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert nobody.returncode == 1 and "UNAVAILABLE" in nobody.stderr


def test_a_tls_server_without_models_is_up_but_not_serving(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca", "healthcheck CA")
    cert = ca.issue("server", "localhost", server=True)
    models = tmp_path / "models"
    models.mkdir()
    proc = start_server(models, "--tls-cert", str(cert.cert), "--tls-key", str(cert.key))
    try:
        target = f"localhost:{proc.port}"
        over_tls = healthcheck("--target", target, "--tls-ca", str(ca.cert_path))
        plaintext = healthcheck("--target", target, "--timeout", "2")
    finally:
        proc.stop()
    assert over_tls.returncode == 1 and "(server): NOT_SERVING" in over_tls.stdout, over_tls
    assert plaintext.returncode == 1 and "UNAVAILABLE" in plaintext.stderr, plaintext
