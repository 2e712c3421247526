"""TLS, mutual TLS and tokens on a real `digits-server` process, with certificates made by a
throwaway CA at test time; plus the TLS/basic-auth protected /metrics endpoint."""

from __future__ import annotations

import base64
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.certs import CertFiles, CertificateAuthority
from tests.serverproc import ServerProcess, start_server

INFER = "inference-token-" + "7" * 20
ADMIN = "admin-token-" + "9" * 24


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder / "ca", "digits test CA")
    rogue = CertificateAuthority(folder / "rogue", "rogue CA")
    return {
        "ca": ca,
        "server": ca.issue("server", "localhost", server=True),
        "client": ca.issue("client", "digits-client", server=False),
        "rogue_client": rogue.issue("rogue-client", "mallory", server=False),
        "rogue": rogue,
    }


@pytest.fixture(scope="module")
def empty_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def channel(proc: ServerProcess, ca: Path | None, client: CertFiles | None = None) -> grpc.Channel:
    """A channel to the server: TLS trusting `ca` (with a client certificate), or plaintext."""
    if ca is None:
        return grpc.insecure_channel(proc.target)
    credentials = grpc.ssl_channel_credentials(
        ca.read_bytes(),
        client.key_pem if client else None,
        client.cert_pem if client else None,
    )
    return grpc.secure_channel(f"localhost:{proc.port}", credentials)


def list_models_code(proc: ServerProcess, ca: Path | None, client: CertFiles | None = None, metadata=None):
    with channel(proc, ca, client) as ch:
        try:
            pb_grpc.DigitClassifierStub(ch).ListModels(pb.ListModelsRequest(), timeout=20, metadata=metadata)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_tls_port_serves_only_tls_clients_that_trust_its_ca(pki, empty_models: Path) -> None:
    server: CertFiles = pki["server"]
    proc = start_server(empty_models, "--tls-cert", str(server.cert), "--tls-key", str(server.key))
    try:
        assert list_models_code(proc, pki["ca"].cert_path) == grpc.StatusCode.OK
        assert list_models_code(proc, None) == grpc.StatusCode.UNAVAILABLE  # plaintext client
        assert list_models_code(proc, pki["rogue"].cert_path) == grpc.StatusCode.UNAVAILABLE  # wrong trust root
        assert "gRPC (TLS)" in proc.log()
    finally:
        assert proc.stop() == 0, proc.log()


def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(pki, empty_models: Path) -> None:
    server: CertFiles = pki["server"]
    ca: CertificateAuthority = pki["ca"]
    proc = start_server(
        empty_models, "--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(ca.cert_path)
    )
    try:
        assert list_models_code(proc, ca.cert_path, pki["client"]) == grpc.StatusCode.OK
        assert list_models_code(proc, ca.cert_path) == grpc.StatusCode.UNAVAILABLE  # no client certificate
        assert list_models_code(proc, ca.cert_path, pki["rogue_client"]) == grpc.StatusCode.UNAVAILABLE
        assert list_models_code(proc, None) == grpc.StatusCode.UNAVAILABLE
        assert "gRPC (mutual TLS)" in proc.log()
    finally:
        assert proc.stop() == 0, proc.log()


def test_tokens_over_mutual_tls_from_file_and_environment(pki, empty_models: Path, tmp_path: Path) -> None:
    server: CertFiles = pki["server"]
    ca: CertificateAuthority = pki["ca"]
    tokens = tmp_path / "tokens"
    tokens.write_text(f"inference {INFER}\n")
    tokens.chmod(0o600)
    proc = start_server(
        empty_models,
        "--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(ca.cert_path),
        "--tokens-file", str(tokens),
        env={"DIGITS_SERVER_ADMIN_TOKENS": ADMIN},
    )
    try:
        cmdline = Path(f"/proc/{proc.process.pid}/cmdline").read_bytes()
        assert INFER.encode() not in cmdline and ADMIN.encode() not in cmdline  # nothing secret in `ps`
        client = pki["client"]
        assert list_models_code(proc, ca.cert_path, client) == grpc.StatusCode.UNAUTHENTICATED
        assert list_models_code(proc, ca.cert_path, client, [("authorization", "Bearer " + "z" * 30)]) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert list_models_code(proc, ca.cert_path, client, [("authorization", f"Bearer {INFER}")]) == grpc.StatusCode.OK
        assert list_models_code(proc, ca.cert_path, client, [("authorization", f"Bearer {ADMIN}")]) == grpc.StatusCode.OK
        with channel(proc, ca.cert_path, client) as ch:
            admin = pb_grpc.DigitsAdminStub(ch)
            with pytest.raises(grpc.RpcError) as denied:
                admin.ReloadModels(pb.ReloadModelsRequest(), timeout=20, metadata=[("authorization", f"Bearer {INFER}")])
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            try:
                admin.ReloadModels(pb.ReloadModelsRequest(), timeout=20, metadata=[("authorization", f"Bearer {ADMIN}")])
            except grpc.RpcError as error:  # past auth: whatever the admin service answers, not an auth code
                assert error.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
            # Bad input from an authenticated client still gets its own documented code.
            with pytest.raises(grpc.RpcError) as invalid:
                pb_grpc.DigitClassifierStub(ch).Classify(
                    pb.ClassifyRequest(image=pb.Image(pixels=b"\x01")), timeout=20,
                    metadata=[("authorization", f"Bearer {INFER}")],
                )
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        log = proc.log()
        assert "token auth on: 2 token(s) with the inference scope, 1 with the admin scope" in log
        assert INFER not in log and ADMIN not in log
    finally:
        assert proc.stop() == 0, proc.log()


def test_open_server_warns_at_start(empty_models: Path) -> None:
    proc = start_server(empty_models)
    try:
        assert "WARNING" in proc.log() and "no tokens configured: the server is OPEN" in proc.log()
        assert list_models_code(proc, None) == grpc.StatusCode.OK
    finally:
        assert proc.stop() == 0, proc.log()


def fetch_metrics(url: str, ca: Path | None = None, user: str | None = None, password: str | None = None):
    """(HTTP status, body) of a GET, or the exception it raised."""
    request = urllib.request.Request(url)
    if user is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
    try:
        with urllib.request.urlopen(request, timeout=20, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metrics_port_with_tls_and_basic_auth(pki, empty_models: Path, tmp_path: Path) -> None:
    server: CertFiles = pki["server"]
    users = tmp_path / "metrics-users"
    users.write_text("prometheus:scrape-secret\n")
    users.chmod(0o600)
    proc = start_server(
        empty_models,
        "--metrics-tls-cert", str(server.cert), "--metrics-tls-key", str(server.key), "--metrics-auth-file", str(users),
    )
    try:
        url = f"https://localhost:{proc.metrics_port}/metrics"
        ca = pki["ca"].cert_path
        with socket.create_connection(("127.0.0.1", proc.metrics_port)):  # connects, never says hello
            status, body = fetch_metrics(url, ca, "prometheus", "scrape-secret")  # is not held up by it
        assert status == 200 and "digits_requests_total" in body
        status, body = fetch_metrics(url, ca)
        assert status == 401 and "basic auth" in body
        assert fetch_metrics(url, ca, "prometheus", "guess")[0] == 401
        with pytest.raises(OSError):  # plain HTTP gets no answer from an HTTPS port
            fetch_metrics(f"http://localhost:{proc.metrics_port}/metrics", None, "prometheus", "scrape-secret")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch_metrics(url, pki["rogue"].cert_path, "prometheus", "scrape-secret")
        # A failed handshake does not stop the endpoint.
        assert fetch_metrics(url, ca, "prometheus", "scrape-secret")[0] == 200
    finally:
        assert proc.stop() == 0, proc.log()


def version_states(proc: ServerProcess) -> dict[tuple[str, int], tuple[int, str]]:
    with channel(proc, None) as ch:
        listed = pb_grpc.DigitClassifierStub(ch).ListModels(pb.ListModelsRequest(), timeout=20)
    return {(m.name, v.version): (v.state, v.error) for m in listed.models for v in m.versions}


def test_group_writable_model_folders_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version = root / "lstm" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"not really a graph")
    version.chmod(0o775)  # any user of the group (not only of the world) could swap the graph
    proc = start_server(root)
    try:
        state, error = version_states(proc)[("lstm", 1)]
        assert state == pb.MODEL_STATE_FAILED
        assert "refused: writable by other users" in error and "--allow-world-writable-models" in error
        assert "refused: writable by other users" in proc.log()
    finally:
        assert proc.stop() == 0, proc.log()
    proc = start_server(root, "--allow-world-writable-models")
    try:
        state, error = version_states(proc)[("lstm", 1)]
        assert state == pb.MODEL_STATE_FAILED and error and "refused" not in error  # it tried: the graph is junk
    finally:
        assert proc.stop() == 0, proc.log()


def test_client_library_and_cli_over_mutual_tls_with_tokens(pki, empty_models: Path, tmp_path: Path) -> None:
    import asyncio
    import subprocess
    import sys

    from digits import AsyncDigitsClient, DigitsClient
    from digits.errors import AuthenticationError, PermissionDeniedError, UnavailableError
    from tests.serverproc import source_env

    server: CertFiles = pki["server"]
    ca: CertificateAuthority = pki["ca"]
    client: CertFiles = pki["client"]
    proc = start_server(
        empty_models,
        "--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(ca.cert_path),
        env={"DIGITS_SERVER_INFERENCE_TOKENS": INFER, "DIGITS_SERVER_ADMIN_TOKENS": ADMIN},
    )
    target = f"localhost:{proc.port}"
    tls = {"tls_ca": ca.cert_path, "tls_cert": client.cert, "tls_key": client.key}
    try:
        with DigitsClient(target, token=INFER, timeout=20, **tls) as digits:
            assert digits.list_models() == []
            with pytest.raises(PermissionDeniedError, match="admin scope"):
                digits.reload_models()
        with DigitsClient(target, timeout=20, **tls) as digits, pytest.raises(AuthenticationError):
            digits.list_models()
        with DigitsClient(target, token=INFER, timeout=20, tls_ca=ca.cert_path) as digits:
            with pytest.raises(UnavailableError):  # no client certificate
                digits.list_models()

        async def async_calls() -> None:
            async with AsyncDigitsClient(target, token=ADMIN, timeout=20, **tls) as digits:
                assert await digits.list_models() == []
            async with AsyncDigitsClient(target, token=INFER, timeout=20, **tls) as digits:
                with pytest.raises(PermissionDeniedError):
                    await digits.reload_models()

        asyncio.run(async_calls())

        token_file = tmp_path / "token"
        token_file.write_text(INFER + "\n")
        flags = ["--target", target, "--tls-ca", str(ca.cert_path), "--tls-cert", str(client.cert),
                 "--tls-key", str(client.key)]
        cli = [sys.executable, "-m", "digits.cli", "models", *flags]
        ok = subprocess.run([*cli, "--token-file", str(token_file), "--json"], capture_output=True, text=True,
                            env=source_env(), timeout=120)
        assert ok.returncode == 0, ok.stderr
        refused = subprocess.run(cli, capture_output=True, text=True, env=source_env(), timeout=120)
        assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        assert proc.stop() == 0, proc.log()


def test_refused_calls_are_counted_on_metrics(empty_models: Path) -> None:
    proc = start_server(empty_models, env={"DIGITS_SERVER_INFERENCE_TOKENS": INFER})
    try:
        assert list_models_code(proc, None) == grpc.StatusCode.UNAUTHENTICATED
        with channel(proc, None) as ch:
            with pytest.raises(grpc.RpcError):
                pb_grpc.DigitsAdminStub(ch).ReloadModels(
                    pb.ReloadModelsRequest(), timeout=20, metadata=[("authorization", f"Bearer {INFER}")]
                )
        body = fetch_metrics(proc.metrics_url)[1]
        assert 'digits_auth_rejections_total{code="UNAUTHENTICATED",method="/digits.v1.DigitClassifier/ListModels"} 1.0' in body
        assert 'digits_auth_rejections_total{code="PERMISSION_DENIED",method="/digits.v1.DigitsAdmin/ReloadModels"} 1.0' in body
    finally:
        assert proc.stop() == 0, proc.log()


def test_scopes_cover_the_ecosystem_protocols(empty_models: Path) -> None:
    proc = start_server(empty_models, env={"DIGITS_SERVER_INFERENCE_TOKENS": INFER, "DIGITS_SERVER_ADMIN_TOKENS": ADMIN})
    auth_codes = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)

    def code(method: str, token: str | None) -> grpc.StatusCode:
        metadata = [("authorization", f"Bearer {token}")] if token else None
        with channel(proc, None) as ch:
            try:
                ch.unary_unary(method)(b"", timeout=20, metadata=metadata)  # b"": the empty message of any type
            except grpc.RpcError as error:
                return error.code()
        return grpc.StatusCode.OK

    try:
        v2, tfs = "/inference.GRPCInferenceService/", "/tensorflow.serving."
        assert code(v2 + "ServerLive", None) == grpc.StatusCode.OK  # a health check: open
        assert code(v2 + "ServerReady", None) == grpc.StatusCode.OK
        for method in (v2 + "ModelInfer", v2 + "ModelMetadata", tfs + "PredictionService/Predict",
                       tfs + "ModelService/GetModelStatus"):
            assert code(method, None) == grpc.StatusCode.UNAUTHENTICATED, method
            assert code(method, INFER) not in auth_codes, method
        for method in (v2 + "RepositoryModelLoad", v2 + "RepositoryModelUnload"):
            assert code(method, INFER) == grpc.StatusCode.PERMISSION_DENIED, method
            assert code(method, ADMIN) not in auth_codes, method
    finally:
        assert proc.stop() == 0, proc.log()
