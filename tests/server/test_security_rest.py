"""The REST port under the gRPC port's rules, on real server processes: its TLS (mutual TLS with
the same files), its tokens and scopes, its message and batch limits, and graceful drain on
SIGTERM (accepted requests finish, later ones get 503). Clients: urllib (the standard library)
and aiohttp's client, as stock as it gets."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.certs import CertFiles, CertificateAuthority
from tests.serverproc import run_server_until_exit, start_server

INFER = "inference-token-" + "7" * 20
ADMIN = "admin-token-" + "9" * 24
GRACE = 15.0
CALLERS = 48


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder / "ca", "digits test CA")
    return {
        "ca": ca,
        "server": ca.issue("server", "localhost", server=True),
        "client": ca.issue("client", "digits-client", server=False),
    }


def call(url: str, *, token: str | None = None, body: bytes | None = None,
         context: ssl.SSLContext | None = None, headers: dict | None = None) -> tuple[int, dict]:
    """One request: (HTTP status, JSON answer)."""
    given = dict(headers or {})
    if token is not None:
        given["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=given, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            raise AssertionError(f"{error.code}: {text!r}") from None


def infer_body(images: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": list(images.shape),
                                   "data": images.tolist()}]}).encode()


def rejections(metrics_url: str) -> dict[tuple[str, str], float]:
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    return {
        (s.labels["method"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "digits_auth_rejections"
        for s in family.samples
        if s.name == "digits_auth_rejections_total"
    }


def test_rest_port_takes_the_grpc_ports_mutual_tls_and_token_scopes(pki, gru_repo: Path, tmp_path: Path) -> None:
    server: CertFiles = pki["server"]
    ca: CertificateAuthority = pki["ca"]
    tokens = tmp_path / "tokens"
    tokens.write_text(f"inference {INFER}\nadmin {ADMIN}\n")
    tokens.chmod(0o600)
    proc = start_server(
        gru_repo, "--default-model", "gru", "--http-port", "0",
        "--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(ca.cert_path),
        "--tokens-file", str(tokens),
    )
    try:
        base = f"https://localhost:{proc.extra['http_port']}"
        trusted = ssl.create_default_context(cafile=str(ca.cert_path))
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):  # no client certificate
            call(f"{base}/v2/health/live", context=trusted)
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plaintext
            call(f"http://127.0.0.1:{proc.extra['http_port']}/v2/health/live")
        mutual = ssl.create_default_context(cafile=str(ca.cert_path))
        mutual.load_cert_chain(str(pki["client"].cert), str(pki["client"].key))
        assert call(f"{base}/v2/health/live", context=mutual) == (200, {"live": True})  # open, like gRPC health
        status, answer = call(f"{base}/v2", context=mutual)
        assert status == 401 and "missing credentials" in answer["error"]
        assert call(f"{base}/v2", context=mutual, token="z" * 30)[0] == 401
        assert call(f"{base}/v2", context=mutual, token=INFER)[0] == 200
        digit = np.zeros((1, 28, 28), np.uint8)
        assert call(f"{base}/v2/models/gru/infer", context=mutual, token=INFER, body=infer_body(digit))[0] == 200
        assert call(f"{base}/v1/models/gru", context=mutual, token=INFER)[0] == 200
        load = f"{base}/v2/repository/models/gru/load"
        status, answer = call(load, context=mutual, token=INFER, body=b"{}")
        assert status == 403 and "needs the admin scope" in answer["error"]
        assert call(load, context=mutual, token=ADMIN, body=b"{}") == (200, {})
        assert call(f"{base}/no/such/path", context=mutual)[0] == 401  # unknown paths need admin, like gRPC
        assert call(f"{base}/no/such/path", context=mutual, token=ADMIN)[0] == 404
        seen = rejections(proc.metrics_url)
        assert seen[("/inference.GRPCInferenceService/ServerMetadata", "UNAUTHENTICATED")] >= 2
        assert seen[("/inference.GRPCInferenceService/RepositoryModelLoad", "PERMISSION_DENIED")] >= 1
        assert "REST on 127.0.0.1" in proc.log()
    finally:
        assert proc.stop() == 0, proc.log()


def test_rest_limits_are_the_grpc_ports(gru_repo: Path, digits: np.ndarray) -> None:
    proc = start_server(
        gru_repo, "--default-model", "gru", "--http-port", "0", "--max-message-bytes", "200000",
        "--max-batch-images", "4",
    )
    try:
        url = f"{proc.http_url}/v2/models/gru/infer"
        status, answer = call(url, body=infer_body(digits[:5]))
        assert status == 400 and "more than the limit of 4" in answer["error"], answer
        status, answer = call(url, body=infer_body(np.full((80, 28, 28), 255, np.uint8)))  # > 200000 bytes of JSON
        assert status == 413 and "--max-message-bytes" in answer["error"], answer
        assert call(url, body=infer_body(digits[:4]))[0] == 200
        status, answer = call(f"{proc.http_url}/v1/models/gru:predict", body=json.dumps(
            {"instances": digits[:5].tolist()}).encode())
        assert status == 400 and "more than the limit of 4" in answer["error"], answer
    finally:
        assert proc.stop() == 0, proc.log()


async def drive(url: str, body: bytes, signal_server) -> tuple[float, list[tuple[float, float, str]]]:
    """CALLERS clients posting in a loop; the server is signalled with the burst in full flow;
    each caller stops once refused. Returns (signal time, [(started, ended, outcome)])."""
    calls: list[tuple[float, float, str]] = []
    signalled_at: list[float] = []

    async def caller(session: aiohttp.ClientSession) -> None:
        while True:
            started = time.monotonic()
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    outcome = str(response.status)
            except aiohttp.ClientConnectionError:
                outcome = "connection refused or closed"
            calls.append((started, time.monotonic(), outcome))
            if signalled_at and (outcome != "200" or time.monotonic() - signalled_at[0] > 8):
                return

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        callers = [asyncio.ensure_future(caller(session)) for _ in range(CALLERS)]
        while sum(outcome == "200" for _, _, outcome in calls) < 200:
            await asyncio.sleep(0.01)
        signalled_at.append(time.monotonic())
        signal_server()
        await asyncio.gather(*callers)
    return signalled_at[0], calls


def test_sigterm_drains_the_rest_port(gru_repo: Path, digits: np.ndarray) -> None:
    # a 30 ms batch timeout keeps requests queued, so many are in flight when the signal comes
    proc = start_server(
        gru_repo, "--default-model", "gru", "--http-port", "0", "--grace-seconds", str(GRACE),
        "--batch-timeout-us", "30000", "--max-queued", "100000",
    )
    try:
        url = f"{proc.http_url}/v2/models/gru/infer"
        signalled, calls = asyncio.run(drive(url, infer_body(digits[:2]), lambda: proc.process.send_signal(signal.SIGTERM)))
        exit_code = proc.process.wait(GRACE + 30)
    finally:
        proc.stop()
    in_flight = [c for c in calls if c[0] < signalled < c[1]]
    before = [c for c in calls if c[0] < signalled]
    after = [c for c in calls if c[0] >= signalled]
    summary = (f"before: {dict(Counter(o for *_, o in before))}; in flight at the signal: "
               f"{dict(Counter(o for *_, o in in_flight))}; after: {dict(Counter(o for *_, o in after))}")
    print("\n" + summary)
    assert exit_code == 0 and "Traceback" not in proc.log(), proc.log()
    assert len(in_flight) >= CALLERS // 2, summary  # the signal came with the burst in full flow
    assert all(o == "200" for *_, o in before), summary  # nothing accepted is lost
    assert any(o == "503" for *_, o in after), summary  # new requests: refused at the door
    assert {o for *_, o in after} <= {"200", "503", "connection refused or closed"}, summary


def test_a_taken_http_port_is_a_clean_startup_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        done = run_server_until_exit(tmp_path, "--port", "0", "--metrics-port", "-1", "--http-port", str(taken))
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output
    assert f"http_port: listening on 127.0.0.1:{taken} is in use by another process" in done.stderr, output
