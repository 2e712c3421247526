"""TLS and mutual TLS against a real fake server, with certificates made by openssl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from digits import DigitsClient, UnavailableError
from digits.cli import main

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca.pem, server.pem/key (127.0.0.1), client.pem/key, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=digits-test-ca", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext, cwd=d)
    return d


def _server_credentials(pki: Path, require_client_auth: bool) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=require_client_auth,
    )


def test_tls_with_ca(pki, server_factory):
    server = server_factory(_server_credentials(pki, require_client_auth=False))
    with DigitsClient(server.target, tls_ca=pki / "ca.pem", timeout=5) as client:
        assert client.classify(bytes([3]) + bytes(783)).digit == 3
    with DigitsClient(server.target, timeout=5) as plaintext:
        with pytest.raises(UnavailableError):
            plaintext.classify(bytes(784))


def test_mutual_tls(pki, server_factory, capsys):
    server = server_factory(_server_credentials(pki, require_client_auth=True))
    with DigitsClient(server.target, tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem",
                      tls_key=pki / "client.key", timeout=5) as client:
        assert client.list_models()[0].name == "lstm"
    with DigitsClient(server.target, tls_ca=pki / "ca.pem", timeout=5) as no_cert:
        with pytest.raises(UnavailableError):
            no_cert.list_models()
    code = main(["models", "--target", server.target, "--tls-ca", str(pki / "ca.pem"),
                 "--tls-cert", str(pki / "client.pem"), "--tls-key", str(pki / "client.key")])
    assert code == 0 and "lstm*" in capsys.readouterr().out
