"""Startup faults end in a clear one-line error and a non-zero exit, never a traceback or a
server that silently shares or lacks a port."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.serverproc import run_server_until_exit, start_server


@pytest.fixture(scope="module")
def empty_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def assert_clean_failure(completed, *phrases: str) -> None:
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, output
    assert "Traceback" not in output, output
    for phrase in phrases:
        assert phrase in completed.stderr, output


def test_metrics_port_already_taken(empty_models: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        completed = run_server_until_exit(empty_models, "--port", "0", "--metrics-port", str(taken))
    assert_clean_failure(completed, f"metrics_port: 127.0.0.1:{taken} is already in use", "--metrics-port")


def test_grpc_port_already_taken_by_another_server(empty_models: Path) -> None:
    first = start_server(empty_models)
    try:
        completed = run_server_until_exit(empty_models, "--port", str(first.port), "--metrics-port", "-1")
        assert_clean_failure(completed, f"port: cannot listen on 127.0.0.1:{first.port}")
        with grpc.insecure_channel(first.target) as channel:  # the first server is unharmed
            pb_grpc.DigitClassifierStub(channel).ListModels(pb.ListModelsRequest(), timeout=20)
    finally:
        assert first.stop() == 0, first.log()


@pytest.mark.parametrize(
    "flags, phrase",
    [
        (["--tls-cert", "{tmp}/absent.crt", "--tls-key", "{tmp}/absent.key"], "cannot read"),
        (["--tls-cert", "{tmp}/garbage", "--tls-key", "{tmp}/garbage"], "is not a PEM file"),
        (["--tls-cert", "{tmp}/garbage"], "TLS needs both --tls-cert and --tls-key"),
        (["--tokens-file", "{tmp}/absent-tokens"], "tokens_file: cannot read"),
        (["--tokens-file", "{tmp}/garbage"], "tokens_file: "),
        (["--metrics-auth-file", "{tmp}/absent-users"], "metrics_auth_file: cannot read"),
        (["--metrics-tls-key", "{tmp}/garbage"], "needs both --metrics-tls-cert and --metrics-tls-key"),
    ],
)
def test_bad_security_settings_fail_at_start(empty_models: Path, tmp_path: Path, flags: list[str], phrase: str) -> None:
    (tmp_path / "garbage").write_text("garbage\n")
    completed = run_server_until_exit(
        empty_models, "--port", "0", "--metrics-port", "0", *[f.format(tmp=tmp_path) for f in flags]
    )
    assert_clean_failure(completed, phrase)
