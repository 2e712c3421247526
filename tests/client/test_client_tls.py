"""TLS and mutual TLS against a real fake server, with certificates made by tests/certs.py
(the `cryptography` package: no openssl binary needed, so nothing is skipped)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from digits import DigitsClient, UnavailableError
from digits.cli import main
from tests.certs import CertificateAuthority


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca.pem, server.pem/key (localhost, 127.0.0.1, ::1), client.pem/key, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(d / "ca", "digits-test-ca")
    (d / "ca.pem").write_bytes(ca.cert_path.read_bytes())
    for name in ("server", "client"):
        issued = ca.issue(name, name, server=name == "server")
        (d / f"{name}.pem").write_bytes(issued.cert_pem)
        (d / f"{name}.key").write_bytes(issued.key_pem)
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
